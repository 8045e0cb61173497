import sys

from clinic.cli import main

sys.exit(main())
