# One image for api, worker, beat and flower (runtime dependencies only).
FROM python:3.11-slim
# FORWARDED_ALLOW_IPS: uvicorn trusts no proxy unless told (set it to TRUSTED_PROXIES).
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 APP_ENV=production FORWARDED_ALLOW_IPS=""
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY api ./api
COPY core ./core
COPY gateways ./gateways
COPY models ./models
COPY monitoring ./monitoring
COPY tasks ./tasks
COPY workflows ./workflows
COPY manage.py .
RUN useradd --create-home --uid 10001 oms && chown -R oms /app
USER oms
EXPOSE 8000 5555
CMD ["uvicorn", "api.main:create_app", "--factory", "--host", "0.0.0.0", "--port", "8000"]
