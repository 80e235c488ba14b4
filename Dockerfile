# Mosaic Relay. Build: docker build -t mosaic-relay .   Run: see the README's "Docker" section.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RELAY_CONFIG=/etc/relay/relay.yaml

COPY pyproject.toml README.md /src/
COPY relay /src/relay
RUN pip install /src \
    && rm -rf /src \
    && useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin relay \
    && mkdir -p /etc/relay /data \
    && chown relay:relay /data

COPY config/docker.yaml /etc/relay/relay.yaml

USER relay
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080

# Slim images have no curl: probe /healthz with Python's standard library.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]

ENTRYPOINT ["relay"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
