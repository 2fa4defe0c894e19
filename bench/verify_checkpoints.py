"""Checkpoint verification: our host module against sha256sum, on the same files, in the same run.

It writes a tree of --gb GB (default 3) into a temporary folder under --dir (default
/var/tmp, on disk where /tmp may be a tmpfs): four large files holding 80 % of the bytes,
the rest in 4-32 MiB files and a few hundred 1-64 KiB ones, as a checkpoint tree looks. Then,
in the same run, with the page cache dropped before each cold measurement when it can be
(`echo 3 > /proc/sys/vm/drop_caches`, as root):

- sha256sum over every file, one process (the reference; its digests become the manifest);
- sha256sum split over one process per CPU (what a shell script would do with xargs -P);
- our verify, cold: every file hashed, the stamp not read (`full`) but written;
- the same two, sha256sum and ours, again with the page cache warm (hashing speed alone);
- our verify, warm: the stamp says every file is unchanged, nothing is read;
- on a second tree of 10,000 small files: our warm re-verify (median of 5).

Each large-tree measure runs --repeats times (default 3), interleaved; the median is printed.

Our verify runs in-process (the collection's module_utils, the code that runs on the host)
and must find every file equal to sha256sum's digest. Generated files get an mtime an hour
back, as settled checkpoints have: the module does not stamp files written in the last two
seconds. The folder is removed at the end.

    .venv/bin/python -m bench.verify_checkpoints [--gb 3] [--dir /var/tmp] [--small 10000]
        [--repeats 3]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from cosmos_driver.content import COLLECTIONS_PATH

ROOT = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024
SETTLED = 3600  # seconds: generated files look an hour old
Entries = list[dict]


def load_module() -> ModuleType:
    """The code the host runs (the collection's module_utils), imported as Ansible does."""
    sys.path.insert(0, str(COLLECTIONS_PATH))
    return importlib.import_module(
        "ansible_collections.cosmos.driver.plugins.module_utils.cosmos_checkpoint_verify"
    )


def plan(total: int, rng: random.Random) -> list[tuple[str, int]]:
    """(relative path, size) for a checkpoint-like tree of about `total` bytes."""
    big = total * 8 // 10
    files = [(f"nvidia/Model-7B/part_{i}.pt", big // 4) for i in range(4)]
    medium, index = total - big - total // 50, 0
    while medium > 0:
        size = min(medium, rng.randint(4, 32) * MIB)
        files.append((f"google-t5/t5-11b/shard_{index:04d}.bin", size))
        medium, index = medium - size, index + 1
    small, index = total // 50, 0
    while small > 0:
        size = min(small, rng.randint(1, 64) * 1024)
        files.append((f"facebook/sam2/{index % 20:02d}/file_{index:05d}.json", size))
        small, index = small - size, index + 1
    return files


def write_tree(root: Path, files: list[tuple[str, int]], rng: random.Random) -> None:
    """Write the files (random bytes; a 64 MiB pool sliced at random offsets) and backdate them."""
    pool = rng.randbytes(64 * MIB)
    settled = time.time() - SETTLED
    for rel, size in files:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as out:
            left = size
            while left:
                chunk = min(left, 8 * MIB)
                start = rng.randrange(0, len(pool) - chunk + 1)
                out.write(pool[start : start + chunk])
                left -= chunk
        os.utime(path, (settled, settled))


def drop_caches() -> bool:
    """Write dirty pages out and drop the page cache; False when not allowed (not root)."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        return False
    return True


def sha256sum(root: Path, rels: list[str]) -> dict[str, str]:
    """sha256sum's digests, in argv chunks small enough for the command line."""
    digests: dict[str, str] = {}
    for start in range(0, len(rels), 2000):
        done = subprocess.run(
            ["sha256sum", "--", *rels[start : start + 2000]],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        )
        for line in done.stdout.splitlines():
            digest, _, rel = line.partition("  ")
            digests[rel] = digest
    return digests


def sha256sum_parallel(root: Path, files: list[tuple[str, int]], jobs: int) -> None:
    """One sha256sum process per CPU, files dealt largest first to the least loaded one."""
    groups: list[list[str]] = [[] for _ in range(jobs)]
    loads = [0] * jobs
    for rel, size in sorted(files, key=lambda f: -f[1]):
        least = loads.index(min(loads))
        groups[least].append(rel)
        loads[least] += size
    procs = [
        subprocess.Popen(["sha256sum", "--", *group], cwd=root, stdout=subprocess.DEVNULL)
        for group in groups
        if group
    ]
    if any(proc.wait() for proc in procs):
        raise RuntimeError("sha256sum failed")


def timed(action: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


class Bench:
    """The large-tree measurements, in order, with the cache dropped before each cold one;
    each measure is repeated and its median kept (the repeats are interleaved, so a busy
    moment of the machine hits every measure alike)."""

    def __init__(self, module: ModuleType, root: Path, files: list[tuple[str, int]]) -> None:
        self.module, self.root, self.files = module, root, files
        self.rels = [rel for rel, _ in files]
        self.samples: dict[str, list[float]] = {}
        self.dropped = False
        self.manifest: Entries = []

    @property
    def times(self) -> dict[str, float]:
        return {key: statistics.median(values) for key, values in self.samples.items()}

    def measure(self, key: str, action: Callable[[], object], cold: bool = False) -> object:
        if cold:
            self.dropped = drop_caches()
        seconds, result = timed(action)
        self.samples.setdefault(key, []).append(seconds)
        return result

    def verify(self, full: bool) -> dict:
        verification = self.module.Verification(str(self.root), self.manifest, [], full=full)
        return verification.run()

    def run(self, repeats: int) -> list[str]:
        """Time every way; return what disagrees (empty when our digests are sha256sum's)."""
        sizes = dict(self.files)
        jobs = os.cpu_count() or 1
        wrong: list[str] = []
        for _ in range(repeats):
            digests = self.measure("sha256sum cold", lambda: sha256sum(self.root, self.rels), True)
            self.manifest = [{"path": r, "size": sizes[r], "sha256": digests[r]} for r in self.rels]
            self.measure(
                "sha256sum -P cold", lambda: sha256sum_parallel(self.root, self.files, jobs), True
            )
            cold = self.measure("ours cold", lambda: self.verify(full=True), True)
            self.measure("sha256sum cached", lambda: sha256sum(self.root, self.rels))
            cached = self.measure("ours cached", lambda: self.verify(full=True))
            warm = self.measure("ours warm", lambda: self.verify(full=False))
            wrong += check(cold, cached, warm, len(self.files))
        return wrong


def check(cold: dict, cached: dict, warm: dict, count: int) -> list[str]:
    """Problems: a digest that differs from sha256sum's, or a warm run that read a file."""
    wrong = []
    for name, result in (("cold", cold), ("cached", cached)):
        if not result["ok"] or result["hashed"] != count:
            wrong.append(f"{name}: ok={result['ok']} hashed={result['hashed']} of {count}")
        wrong += [f"{name}: {item['path']} differs" for item in result["wrong_hash"]]
    if not warm["ok"] or warm["hashed"] or warm["from_stamp"] != count:
        wrong.append(f"warm: ok={warm['ok']} hashed={warm['hashed']} of {count}")
    return wrong


def small_tree(module: ModuleType, root: Path, count: int) -> tuple[float, float, list[str]]:
    """`count` files of 1-4 KiB in 100 folders: seconds of the first verify (hash and stamp)
    and the median of 5 warm re-verifies; problems when a warm run hashed anything."""
    rng = random.Random(7)
    settled = time.time() - SETTLED
    manifest: Entries = []
    for index in range(count):
        rel = f"dir_{index % 100:02d}/file_{index:05d}.bin"
        data = rng.randbytes(rng.randint(1024, 4096))
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
        os.utime(root / rel, (settled, settled))
        manifest.append(
            {"path": rel, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        )
    first, _ = timed(lambda: module.Verification(str(root), manifest, []).run())
    samples, problems = [], []
    for _ in range(5):
        seconds, result = timed(lambda: module.Verification(str(root), manifest, []).run())
        samples.append(seconds)
        if not result["ok"] or result["hashed"]:
            problems.append(f"small warm: ok={result['ok']} hashed={result['hashed']}")
    return first, statistics.median(samples), problems


def print_table(bench: Bench, total: int, small: tuple[int, float, float]) -> None:
    t = bench.times
    gb, count = total / 1e9, len(bench.files)
    cache = "dropped before each cold run" if bench.dropped else "NOT dropped (not root): warm"
    repeats = len(bench.samples["ours cold"])
    print(f"verify_checkpoints: {count} files, {gb:.2f} GB; page cache {cache}")
    print(f"  each time the median of {repeats} runs")
    print(f"  {'measure':<52} {'seconds':>8} {'GB/s':>6}  ratio")
    rows = [
        ("sha256sum, one process, cold", "sha256sum cold", "reference", None),
        (
            "sha256sum, one process per CPU, cold",
            "sha256sum -P cold",
            "/ sha256sum",
            "sha256sum cold",
        ),
        ("ours: verify --full, cold", "ours cold", "ours / sha256sum", "sha256sum cold"),
        ("sha256sum, one process, page cache warm", "sha256sum cached", "reference", None),
        (
            "ours: verify --full, page cache warm",
            "ours cached",
            "ours / sha256sum",
            "sha256sum cached",
        ),
        ("ours: verify, stamped (warm)", "ours warm", "warm / cold", "ours cold"),
    ]
    for label, key, kind, base in rows:
        ratio = f"{t[key] / t[base]:.4f} {kind}" if base else kind
        print(f"  {label:<52} {t[key]:8.3f} {gb / t[key]:6.2f}  {ratio}")
    files, first, warm = small
    print(f"  {f'{files} small files: first verify (hash, stamp)':<52} {first:8.3f}")
    print(f"  {f'{files} small files: stamped re-verify (median of 5)':<52} {warm:8.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=3.0, help="size of the large tree")
    parser.add_argument("--dir", type=Path, default=Path("/var/tmp"), help="where to write")
    parser.add_argument("--small", type=int, default=10_000, help="files in the small tree")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each measure (median)")
    args = parser.parse_args()
    started = time.perf_counter()
    module = load_module()
    work = Path(tempfile.mkdtemp(prefix="cosmos-bench-verify.", dir=args.dir))
    try:
        rng = random.Random(3)
        files = plan(int(args.gb * 1e9), rng)
        write_tree(work / "large", files, rng)
        bench = Bench(module, work / "large", files)
        wrong = bench.run(args.repeats)
        first, warm, small_problems = small_tree(module, work / "small", args.small)
        print_table(bench, sum(size for _, size in files), (args.small, first, warm))
    finally:
        shutil.rmtree(work)
    for line in wrong + small_problems:
        print(f"  MISMATCH {line}")
    agree = "every digest equals sha256sum's" if not wrong else "digests DISAGREE"
    print(f"  {agree}; workers: {os.cpu_count()} (one per CPU)")
    print(f"(the whole benchmark took {time.perf_counter() - started:.1f} s)")
    return 1 if wrong or small_problems else 0


if __name__ == "__main__":
    sys.exit(main())
