"""The serving image: `shipml build` turns a registered model version into an OCI image.

    model.py       the registered version: its record, its files (checked against the hash
                   recorded at registration), the training run's lock
    context.py     gather the inputs (model, lock, wheels) into a build context, hashed
    dockerfile.py  render the Dockerfile; hash a context
    wheels.py      the serving wheels at the training run's locked versions, on the host
    builders.py    the Builder protocol and `detect`; implementations in _docker.py
                   (docker, podman) and _buildah.py, sharing _runner.py
    sbom.py        CycloneDX SBOM of the image's Python environment (runs inside the image)
    smoke.py       infra validation: start the image, /readyz, one prediction vs in-process
    image.py       the whole build: context -> image -> SBOM -> infra validation -> push

Nothing here is imported at package import time: `python -m shipml.build.sbom` runs inside
the image with the standard library only.
"""
