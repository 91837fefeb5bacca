"""What the Grand Challenge interface costs per case, beyond what a native run pays.

On a real-size CT (``--shape``, default 512x512x250 int16, written as .nii.gz the way ``bench
prepare`` writes it), times, alternating, ``--runs`` times each:

- ``layout``: :func:`bench.runners.grandchallenge.lay_out_case` (nibabel read, RAS to LPS, SimpleITK
  writes the uncompressed .mha, inputs.json);
- ``layout peer``: SimpleITK's own NIfTI reader then the same .mha write (the obvious way, which
  this harness does not use because its grid must be nibabel's affine);
- ``read floor``: decompressing and reading the NIfTI alone, which any layout has to do;
- ``convert``: reading back a compressed .mha mask written by SimpleITK the way a container
  writes it (:func:`bench.runners.mha.read_mha_bytes`) and writing ``masks/<case>.nii.gz``.

With ``--docker`` also the start-to-removal time of one locked-down container
(:func:`bench.runners.docker.run_container` of the base image's ``python3`` with no input), the
price of one job per case that a native run pays once.

Usage: python -m benchmarks.bench_grandchallenge [--shape 512 512 250] [--runs 3] [--docker]
"""

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from bench.prepare.nifti import read_volume, save
from bench.runners.grandchallenge import lay_out_case, sockets
from bench.runners.mha import itk_to_nifti, read_mha_bytes, write_mha
from bench.tasks import load_task
from bench.trees import remove_tree


def write_ct(path: Path, shape: tuple[int, int, int]) -> None:
    """A CT-like int16 volume (air, body, lungs, noise) on an oblique-free scanner grid, as .nii.gz."""
    rng = np.random.default_rng(0)
    x, y = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    body = ((x - shape[0] / 2) / (shape[0] * 0.45)) ** 2 + ((y - shape[1] / 2) / (shape[1] * 0.35)) ** 2 <= 1
    slab = np.where(body, 40, -1000)
    volume = np.repeat(slab[:, :, None], shape[2], axis=2).astype(np.int16)
    volume += rng.normal(0, 20, shape).astype(np.int16)
    affine = np.array([[-0.7, 0, 0, 180.0], [0, -0.7, 0, 200.0], [0, 0, 1.25, -300.0], [0, 0, 0, 1]])
    save(nib.Nifti1Image(volume, affine), path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=(512, 512, 250))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--docker", action="store_true")
    parser.add_argument("--dir", type=Path, default=None)
    options = parser.parse_args()
    socket = sockets(load_task("ricord-1a-lesion-seg")).input
    with tempfile.TemporaryDirectory(dir=options.dir) as folder:
        root = Path(folder)
        image = root / "ct.nii.gz"
        write_ct(image, tuple(options.shape))
        input_mha = root / "input.mha"
        write_mha(sitk.ReadImage(str(image)), input_mha)
        mask = sitk.Cast(sitk.ReadImage(str(input_mha)) > -400, sitk.sitkUInt8)
        sitk.WriteImage(mask, str(root / "mask.mha"), useCompression=True)
        mask_bytes = (root / "mask.mha").read_bytes()
        timings: dict[str, list[float]] = {"layout": [], "layout peer": [], "read floor": [], "convert": []}
        for run in range(options.runs):
            started = time.perf_counter()
            read_volume(image)
            timings["read floor"].append(time.perf_counter() - started)

            started = time.perf_counter()
            lay_out_case(socket, image, root / f"case-{run}", str(uuid.uuid4()))
            timings["layout"].append(time.perf_counter() - started)
            remove_tree(root / f"case-{run}")

            started = time.perf_counter()
            write_mha(sitk.ReadImage(str(image)), root / "peer.mha")
            timings["layout peer"].append(time.perf_counter() - started)

            started = time.perf_counter()
            converted = itk_to_nifti(read_mha_bytes(mask_bytes, shape=tuple(options.shape), scratch=root))
            save(converted, root / "mask.nii.gz")
            timings["convert"].append(time.perf_counter() - started)
        print(f"CT {options.shape[0]}x{options.shape[1]}x{options.shape[2]} int16 "
              f"({image.stat().st_size / 1e6:.0f} MB .nii.gz, {input_mha.stat().st_size / 1e6:.0f} MB .mha), "
              f"{options.runs} runs, median s:")
        medians = {name: statistics.median(values) for name, values in timings.items()}
        for name, value in medians.items():
            print(f"  {name:12s} {value:7.3f}")
        print(f"  layout / peer  = {medians['layout'] / medians['layout peer']:.2f}")
        print(f"  layout / floor = {medians['layout'] / medians['read floor']:.2f}")
        if options.docker:
            seconds = _container_seconds(root, options.runs)
            print(f"  container start-to-removal, median of {options.runs}: {seconds:.2f} s")


def _container_seconds(root: Path, runs: int) -> float:
    """Median seconds of one locked-down run of the base image's ``python3`` with nothing to read."""
    from bench.runners.base_image import BASE_IMAGE
    from bench.runners.docker import run_container
    from bench.runners.engine import docker_client
    from bench.tasks import Limits

    client = docker_client()
    image = client.images.get(BASE_IMAGE)
    limits = Limits(timeout_s=60, memory="1g", cpus=1)
    (root / "in").mkdir()
    seconds = []
    for index in range(runs):
        output = root / f"out-{index}"
        output.mkdir()
        output.chmod(0o777)
        started = time.perf_counter()
        outcome = run_container(image, root / "in", output, limits, client, labels={})
        seconds.append(time.perf_counter() - started)
        assert outcome.exit_code == 0, outcome
    return statistics.median(seconds)


if __name__ == "__main__":
    main()
