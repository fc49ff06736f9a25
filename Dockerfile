# The minewatch application image: one image for the ingestor, the API, the simulator and the
# storage set-up; docker-compose.yml chooses the command. Build: docker build -t minewatch .
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY minewatch minewatch
COPY ingest ingest
COPY detectors detectors
COPY api api
COPY simulator simulator
COPY group group
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /data --create-home minewatch
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
# Spool, Numba's compiled-kernel cache and simulator labels live in /data (a volume per service).
ENV MINEWATCH_DATA_DIR=/data \
    NUMBA_CACHE_DIR=/data/numba-cache \
    PYTHONUNBUFFERED=1
USER minewatch
WORKDIR /data
VOLUME ["/data"]
# API, ingestor metrics
EXPOSE 8000 9100
ENTRYPOINT ["minewatch"]
CMD ["--help"]
