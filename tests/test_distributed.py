"""DistributedDataParallel on the CPU with the gloo backend, started by torchrun: 2 processes on one node, and
two single-process "nodes" that meet at a c10d rendezvous on 127.0.0.1."""
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO, run_gan

TORCHRUN = str(Path(sys.executable).parent / "torchrun")
# No BatchNorm, no dropout: N ranks x batch b is the same maths as one process with batch N*b.
MLP = ["model=mlp", "model.hidden_dim=32", "dataset=ring8", "dataset.num_samples=2048", "trainer.device=cpu",
       "trainer.num_workers=0", "trainer.log_every=5", "trainer.sample_every=100", "trainer.ckpt_every=100"]


def torchrun(*args: str, procs: int = 2) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env.update({"COLUMNS": "120", "OMP_NUM_THREADS": "1"})
    cmd = [TORCHRUN, "--standalone", f"--nproc_per_node={procs}", "-m", "gan_cli.train", *args]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kill_torchrun(p: subprocess.Popen) -> None:
    """SIGKILL a torchrun agent and its workers (torchrun starts each worker in a session of its own)."""
    workers = subprocess.run(["pgrep", "-P", str(p.pid)], capture_output=True, text=True).stdout.split()
    for kill, pid in [*((os.kill, int(w)) for w in workers), (os.killpg, p.pid)]:
        try:
            kill(pid, signal.SIGKILL)
        except ProcessLookupError:  # it ended meanwhile
            pass
    p.wait()


def two_nodes(*args: str, logs: Path, timeout: float = 120) -> list[tuple[int, str, str]]:
    """Two torchrun "nodes" of one process each on this machine, meeting at a c10d rendezvous on 127.0.0.1
    (as `torchrun --nnodes=2 --rdzv_endpoint=HOST:PORT` on two machines): (exit code, stdout, stderr) of each.
    Both are killed (their workers too) if either is still running after `timeout` seconds."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("HYDRA_FULL_ERROR", "RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    env.update({"COLUMNS": "120", "OMP_NUM_THREADS": "1"})
    port = free_port()
    cmd = [TORCHRUN, "--nnodes=2", "--nproc_per_node=1", "--rdzv_backend=c10d", f"--rdzv_endpoint=127.0.0.1:{port}",
           f"--rdzv_id=test-{port}", "--rdzv_conf=join_timeout=60", "-m", "gan_cli.train", *args]
    logs.mkdir(parents=True, exist_ok=True)
    procs, files = [], []
    try:
        for node in range(2):
            out, err = open(logs / f"node{node}.out", "w+"), open(logs / f"node{node}.err", "w+")
            files += [out, err]
            procs.append(subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=err, text=True, env=env,
                                          start_new_session=True))
        deadline = time.monotonic() + timeout
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        hung = [node for node, p in enumerate(procs) if p.poll() is None]
        for p in procs:
            if p.poll() is None:
                kill_torchrun(p)
        texts = []
        for f in files:
            f.seek(0)
            texts.append(f.read())
            f.close()
    results = [(p.returncode, texts[2 * i], texts[2 * i + 1]) for i, p in enumerate(procs)]
    if hung:
        tails = (f"node {i} stdout:\n{o[-1500:]}\nstderr:\n{e[-1500:]}" for i, (_, o, e) in enumerate(results))
        pytest.fail(f"node(s) {hung} still running after {timeout} s, killed:\n" + "\n".join(tails))
    return results


def generator(run: Path) -> dict:
    return torch.load(run / "checkpoints/last.pt", weights_only=True)["networks"]["G"]


def test_two_ranks_stay_in_sync_and_match_one_process_with_the_global_batch(tmp_path):
    out = torchrun(*MLP, "trainer.max_steps=10", "trainer.batch_size=32", f"hydra.run.dir={tmp_path / 'ddp'}")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "global batch 2 x 32 = 64; ranks in sync: yes" in out.stdout
    assert out.stdout.count("run summary") == 1  # rank 0 speaks for the run
    single = run_gan("train", *MLP, "trainer.max_steps=10", "trainer.batch_size=64",
                     f"hydra.run.dir={tmp_path / 'single'}", env={"OMP_NUM_THREADS": "1"})
    assert single.returncode == 0, single.stderr
    a, b = generator(tmp_path / "ddp"), generator(tmp_path / "single")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)


def test_ddp_resume_with_gradient_penalty_and_ema(tmp_path):
    common = [*MLP, "loss=wgan_gp", "trainer.n_critic=2", "trainer.ema.enabled=true", "trainer.batch_size=16"]
    full = torchrun(*common, "trainer.max_steps=8", f"hydra.run.dir={tmp_path / 'full'}")
    half = torchrun(*common, "trainer.max_steps=4", f"hydra.run.dir={tmp_path / 'half'}")
    resumed = torchrun(*common, "trainer.max_steps=8", f"trainer.resume={tmp_path / 'half'}",
                       f"hydra.run.dir={tmp_path / 'resumed'}")
    for out in (full, half, resumed):
        assert out.returncode == 0, out.stderr[-3000:]
        assert "ranks in sync: yes" in out.stdout
    a = torch.load(tmp_path / "full/checkpoints/last.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed/checkpoints/last.pt", weights_only=True)
    assert len(a["rng"]["per_rank"]) == 2
    for part in ("networks", "ema"):
        for net in a[part]:
            assert all(torch.equal(a[part][net][k], b[part][net][k]) for k in a[part][net]), (part, net)


def test_two_nodes_stay_in_sync_and_resume_exactly(tmp_path):
    """`torchrun --nnodes=2` with a c10d rendezvous, each node one process: the ranks stay in sync (the global
    batch's equivalence with one process is the single-node test's), and a run resumed half-way (on both
    nodes) ends bit for bit where the uninterrupted run ends."""
    common = [*MLP, "trainer.ema.enabled=true", "trainer.batch_size=16"]
    runs = {"full": [*common, "trainer.max_steps=8"], "half": [*common, "trainer.max_steps=4"],
            "resumed": [*common, "trainer.max_steps=8", f"trainer.resume={tmp_path / 'half'}"]}
    for name, args in runs.items():
        nodes = two_nodes(*args, f"hydra.run.dir={tmp_path / name}", logs=tmp_path / "logs" / name)
        for node, (code, out, err) in enumerate(nodes):
            assert code == 0, (name, node, out[-2000:], err[-3000:])
        speaking = [out for _, out, _ in nodes if "run summary" in out]
        assert len(speaking) == 1, name  # rank 0, on whichever node the rendezvous made node 0
        assert "global batch 2 x 16 = 32; ranks in sync: yes" in speaking[0], (name, speaking[0][-2000:])
    log = (tmp_path / "resumed/train.log").read_text()
    assert f"resumed from {tmp_path / 'half/checkpoints/last.pt'} at step 4" in log
    full = torch.load(tmp_path / "full/checkpoints/last.pt", weights_only=True)
    resumed = torch.load(tmp_path / "resumed/checkpoints/last.pt", weights_only=True)
    assert len(full["rng"]["per_rank"]) == 2 and resumed["step"] == 8
    for part in ("networks", "ema"):
        for net in full[part]:
            assert all(torch.equal(full[part][net][k], resumed[part][net][k]) for k in full[part][net]), (part, net)


def test_sync_bn_needs_several_processes(tmp_path):
    out = run_gan("train", "trainer.sync_bn=true", "trainer.max_steps=1", f"hydra.run.dir={tmp_path}")
    assert out.returncode == 1 and "torchrun" in out.stderr and "Traceback" not in out.stderr


DCGAN = ["model=dcgan", "model.g_width=8", "model.d_width=8", "model.latent_dim=16", "dataset.resolution=16",
         "trainer.device=cpu", "trainer.num_workers=0", "trainer.max_steps=4", "trainer.log_every=2",
         "trainer.batch_size=8"]


def test_ddp_dcgan_with_batchnorm(tmp_path):
    out = torchrun(*DCGAN, f"hydra.run.dir={tmp_path / 'run'}")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "ranks in sync: yes" in out.stdout


def test_sync_bn_on_cpu_is_a_clear_error(tmp_path):
    out = torchrun(*DCGAN, "trainer.sync_bn=true", f"hydra.run.dir={tmp_path / 'run'}")
    assert out.returncode != 0 and "SyncBatchNorm runs on GPUs only" in out.stderr + out.stdout


def test_ddp_growing_and_style_based_networks(tmp_path):
    """ProGAN's unused layers (resolutions not yet reached) and StyleGAN2's lazy R1 / path-length phases
    under DDP: both train, and the ranks end with the same weights."""
    progan = ["model=progan", "model.g_width=4", "model.d_width=4", "model.latent_dim=8", "model.game.stable_steps=1",
              "model.game.fade_steps=1", "trainer.max_steps=5"]
    stylegan = ["model=stylegan", "model.g_width=4", "model.d_width=4", "model.latent_dim=8", "model.w_dim=8",
                "model.game.r1_every=2", "model.game.pl_every=2", "trainer.max_steps=4"]
    for name, args in (("progan", progan), ("stylegan", stylegan)):
        out = torchrun("dataset.resolution=16", "trainer.device=cpu", "trainer.num_workers=0", "trainer.log_every=2",
                       "trainer.batch_size=8", *args, f"hydra.run.dir={tmp_path / name}")
        assert out.returncode == 0, out.stderr[-3000:]
        assert "ranks in sync: yes" in out.stdout, name



def _ada_rank(rank: int, port: int, out: str) -> None:
    """One of two gloo ranks: rank 0 sees D sure of its reals, rank 1 sees D reject its own."""
    from gan_cli.engine.ada import Ada

    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    ada = Ada(0.5, 1, 1.0, p=0.5, pipeline="bgc", images_per_step=200, device=torch.device("cpu"), world=2)
    ada.observe(torch.full((100,), 1.0 if rank == 0 else -1.0))
    ada.adjust(1)
    torch.save(ada.p, Path(out) / f"p{rank}.pt")
    torch.distributed.destroy_process_group()


def test_ada_p_moves_on_r_t_over_all_ranks(tmp_path):
    """r_t = E[sign(D(x))] over both ranks is 0, below the target 0.5: p falls on both. Each rank's own r_t
    (+1 and -1) would move p up on one and down on the other."""
    torch.multiprocessing.spawn(_ada_rank, args=(free_port(), str(tmp_path)), nprocs=2)
    p0, p1 = (torch.load(tmp_path / f"p{rank}.pt") for rank in (0, 1))
    assert torch.equal(p0, p1) and float(p0) == pytest.approx(0.5 - 200 / 1000)
