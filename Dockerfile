# The one image every compose service runs; each service picks its piece with `clinic ...`.
#
# BASE is the official Python image by default; any Debian-like image with python3 (and its venv
# module) will do. To build without a package index, serve a wheelhouse and pass
#   --build-arg PIP_NO_INDEX=1 --build-arg PIP_FIND_LINKS=http://127.0.0.1:8765/
# (pip reads both from the environment; the wheelhouse needs this project's dependencies and its
# build backend, setuptools). The project is installed in a virtualenv, so a base whose Python is
# the distribution's own (externally managed) works as well as the official one.
ARG BASE=python:3.11-slim
FROM ${BASE}
ARG PIP_NO_INDEX
ARG PIP_FIND_LINKS
ENV PATH=/opt/clinic/bin:$PATH PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY setup.cfg pyproject.toml README.md ./
COPY clinic clinic
COPY actors actors
COPY api api
RUN python3 -m venv /opt/clinic \
 && pip install --no-cache-dir '.[postgresql]' \
 && rm -rf build *.egg-info \
 && useradd --system --home /data clinic && mkdir -p /data && chown clinic /data
USER clinic
ENV CLINIC_DATABASE_URL=sqlite:////data/clinic.db
EXPOSE 8000
CMD ["clinic", "up", "--host", "0.0.0.0"]
