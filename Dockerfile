# One image for api, worker, beat and flower (runtime dependencies only).
# Base pinned to the exact Python the tests run on (3.11.7, Debian bookworm); for a
# byte-for-byte pin, replace the tag by its digest (python:3.11.7-slim-bookworm@sha256:…)
# from your registry mirror.
FROM python:3.11.7-slim-bookworm
# FORWARDED_ALLOW_IPS: uvicorn trusts no proxy unless told (set it to TRUSTED_PROXIES).
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 APP_ENV=production FORWARDED_ALLOW_IPS="" \
    DATA_DIR=/tmp/oms-data
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
# The code belongs to root and is read-only for the service user: a compromised process
# cannot rewrite what it runs. Only /tmp (beat schedule, DATA_DIR) is writable.
COPY api ./api
COPY core ./core
COPY gateways ./gateways
COPY models ./models
COPY monitoring ./monitoring
COPY tasks ./tasks
COPY workflows ./workflows
COPY manage.py .
RUN useradd --no-create-home --shell /usr/sbin/nologin --uid 10001 oms \
    && chmod -R a-w /app
USER 10001:10001
EXPOSE 8000 5555
CMD ["uvicorn", "api.main:create_app", "--factory", "--host", "0.0.0.0", "--port", "8000"]
