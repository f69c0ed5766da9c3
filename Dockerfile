# gan_cli in a container: one recipe, CPU or CUDA torch chosen at build time.
#
#   docker build -t gan-cli:cpu .                                  # CPU torch (default)
#   docker build -t gan-cli:cuda --build-arg FLAVOUR=cu130 .       # CUDA 13.0 torch (also cu126, cu132)
#   docker run --rm -v "$PWD/outputs:/work/outputs" gan-cli:cpu    # the quickstart
#
# Both flavours use the same slim Python base: the CUDA torch wheels bring the CUDA runtime,
# cuDNN and NCCL with them, so the host needs only the NVIDIA driver and `docker run --gpus all`.
# torch and torchvision come from the PyTorch wheel index of the flavour, at the versions pinned
# in constraints.txt; everything else comes from PyPI under the same constraints.

ARG PYTHON_IMAGE=python:3.11.14-slim-trixie

# ---- build: a virtual environment in /opt/venv, copied whole into the runtime stage --------
FROM ${PYTHON_IMAGE} AS build

# cpu, or the CUDA variant of the torch wheels: cu126, cu130 (PyPI's default build), cu132.
ARG FLAVOUR=cpu
# The index that serves torch and torchvision for that flavour (a mirror may stand in for it).
ARG TORCH_INDEX=https://download.pytorch.org/whl/${FLAVOUR}
# Optional extras of the package, e.g. `--build-arg EXTRAS=sweeps` (Hydra launchers and Optuna).
ARG EXTRAS=""

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:${PATH}

RUN python -m venv /opt/venv

WORKDIR /src

# torch + torchvision first, from the flavour's index, at exactly the versions of constraints.txt
# (grep fails the build if constraints.txt ever stops pinning them).
COPY constraints.txt ./
RUN grep -E '^(torch|torchvision)==' constraints.txt > torch-requirements.txt \
    && pip install --no-cache-dir --index-url "${TORCH_INDEX}" -r torch-requirements.txt

# Then the package itself, non-editable; the installed torch (2.14.1+cpu or +cuXXX) satisfies
# the `torch==2.14.1` constraint, so pip keeps it.
COPY pyproject.toml README.md ./
COPY gan_cli ./gan_cli
COPY configs ./configs
# `gan train --cfg job` imports torch and composes the quickstart from the installed configs.
RUN pip install --no-cache-dir -c constraints.txt ".${EXTRAS:+[${EXTRAS}]}" \
    && gan train --cfg job experiment=quickstart > /dev/null

# ---- runtime ---------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="gan_cli" \
      org.opencontainers.image.description="Config-driven GAN training: Hydra configs in, TensorBoard runs out."

ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

# A fixed, ordinary uid/gid (1000) so files written to a bind-mounted outputs/ belong to the
# usual first user of the host; `docker run --user "$(id -u):$(id -g)"` for any other. HOME stays
# /home/gan for such a uid too, writable like /tmp, for the caches in ~ (Triton's, torch.hub's).
ENV HOME=/home/gan
RUN groupadd --gid 1000 gan \
    && useradd --no-log-init --create-home --uid 1000 --gid gan --shell /bin/bash gan \
    && chmod 1777 /home/gan

# Root-owned and read-only for the user: the environment cannot be changed by a run.
COPY --from=build /opt/venv /opt/venv

# Runs write to outputs/ relative to the working directory (outputs/runs/DATE/TIME, outputs/.cache).
WORKDIR /work
RUN mkdir -p /work/outputs /work/data && chown gan:gan /work /work/outputs /work/data
VOLUME ["/work/outputs"]

# Numeric, so that Kubernetes' runAsNonRoot and the host can check it without /etc/passwd.
USER 1000:1000

# TensorBoard: docker run -p 6006:6006 --entrypoint tensorboard IMAGE --logdir outputs --bind_all
EXPOSE 6006

# A batch job, not a service: there is nothing to probe.
HEALTHCHECK NONE

# SIGTERM (docker stop) makes `gan train` finish the iteration, save last.pt and exit 143.
ENTRYPOINT ["gan"]
CMD ["train", "experiment=quickstart"]
