import sys

from clinic.ops.cli import main

sys.exit(main())
