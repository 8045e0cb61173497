# The one image every compose service runs; each service picks its piece with `clinic ...`.
FROM python:3.11-slim
WORKDIR /app
COPY setup.cfg pyproject.toml README.md ./
COPY clinic clinic
COPY actors actors
COPY api api
RUN pip install --no-cache-dir '.[postgresql]' \
 && useradd --system --home /data clinic && mkdir -p /data && chown clinic /data
USER clinic
ENV CLINIC_DATABASE_URL=sqlite:////data/clinic.db
EXPOSE 8000
CMD ["clinic", "up", "--host", "0.0.0.0"]
