# One image for every role of the production topology (docs/deployment.md):
#   autobidder serve exchange|fleet       autobidder worker temporal|forecast|optimize
# Installs exactly the pins of requirements.lock, then the project without dependencies, and
# runs as an unprivileged user.
FROM python:3.11.7-slim-bookworm

# torch is pinned in requirements.lock; its CPU build (no CUDA libraries, ~2 GB smaller) is the
# same version from PyTorch's CPU index. Set TORCH_INDEX_URL="" to take it from PyPI alone.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    AUTOBIDDER_DATA_DIR=/var/lib/autobidder

RUN groupadd --system --gid 10001 autobidder \
    && useradd --system --uid 10001 --gid autobidder --home-dir /home/autobidder --create-home \
       --shell /usr/sbin/nologin autobidder \
    && install -d -o autobidder -g autobidder -m 0700 /var/lib/autobidder

WORKDIR /app
COPY requirements.lock ./
RUN pip install ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"} -r requirements.lock

COPY pyproject.toml README.md ./
COPY autobidder/ autobidder/
COPY protogen/ protogen/
COPY workflows/ workflows/
COPY forecasting/ forecasting/
COPY optimization/ optimization/
COPY market_adapters/ market_adapters/
COPY exchange/ exchange/
COPY fleet/ fleet/
COPY worker/ worker/
COPY backtest/ backtest/
COPY strategies/ strategies/
RUN pip install --no-deps --no-build-isolation . && rm -rf build

USER autobidder:autobidder
WORKDIR /home/autobidder
ENTRYPOINT ["autobidder"]
CMD ["--help"]
