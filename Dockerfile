# One image for every bai service: `bai manager|storage|agent|coordinator start`.
FROM python:3.11-slim
WORKDIR /opt/bai
COPY pyproject.toml README.md ./
COPY gen ./gen
COPY services ./services
COPY clients ./clients
COPY envoy ./envoy
RUN pip install --no-cache-dir .
ENTRYPOINT ["bai"]
