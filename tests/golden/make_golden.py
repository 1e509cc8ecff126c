#!/usr/bin/python3
"""Writes the PyTorch golden fixtures that tests/pytorch_parity_test.cpp compares against.

Run from anywhere with the system Python (Debian python3-torch, python3 safetensors):
    /usr/bin/python3 tests/golden/make_golden.py
The fixtures are committed: CI has no torch. Everything is seeded, so a rerun with the same
torch gives the same bytes.

Layouts are PyTorch's: activations NCHW, conv weights OIHW, dense weights [out, in]. The
test converts them to graft's (NHWC, OHWI) and back.

Op fixtures (conv, pool, dense, losses): inputs are drawn in float32 and stored in float32;
the outputs and gradients are computed by PyTorch in float64 from those exact float32
values and then rounded to float32, so the fixture is the exact answer up to one rounding
(a float32 PyTorch run differs from it by ~1e-7 relative, far below the 1e-5 tolerance).

Optimizer fixtures run torch.optim in float32, exactly as a user's training would, for
5 steps with a fresh random gradient per step.

LR schedule fixtures record torch.optim.lr_scheduler values, one per optimizer step.
"""
import json
import math
import os
import struct
import sys
import warnings

import torch
import torch.nn.functional as F
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")


def f32(t):
    return t.detach().to(torch.float32).contiguous()


def save(name, tensors, metadata):
    path = os.path.join(OUT, name)
    metadata = dict(metadata)
    metadata["generator"] = "tests/golden/make_golden.py"
    metadata["torch_version"] = torch.__version__
    tensors = {k: v.contiguous() for k, v in tensors.items()}
    blob = st_save(tensors, metadata={k: str(v) for k, v in metadata.items()})
    # The library writes __metadata__ in hash order; rewrite the header with sorted keys so a
    # rerun gives identical bytes (no spurious fixture diffs), then check it still loads.
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.dumps(json.loads(blob[8:8 + n]), sort_keys=True, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)
    blob = struct.pack("<Q", len(header)) + header + blob[8 + n:]
    loaded = st_load(blob)
    assert loaded.keys() == tensors.keys() and all(torch.equal(loaded[k], tensors[k]) for k in tensors)
    with open(path, "wb") as f:
        f.write(blob)
    print(f"{path}: {os.path.getsize(path)} bytes, {len(tensors)} tensors")


def conv_fixture():
    torch.manual_seed(1)
    # name, n, c_in, h, w, c_out, k, stride, pad
    configs = [
        ("conv_k3_s1_p1", 2, 3, 8, 8, 4, 3, 1, 1),
        ("conv_k3_s2_p1_odd", 2, 5, 9, 7, 6, 3, 2, 1),
        ("conv_k5_s1_p0_b1", 1, 4, 11, 11, 3, 5, 1, 0),
    ]
    tensors, meta = {}, {"configs": ",".join(c[0] for c in configs)}
    for name, n, c_in, h, w, c_out, k, stride, pad in configs:
        x = torch.randn(n, c_in, h, w)
        wt = torch.randn(c_out, c_in, k, k) * (1.0 / math.sqrt(c_in * k * k))
        b = torch.randn(c_out)
        xd = x.double().requires_grad_()
        wd = wt.double().requires_grad_()
        bd = b.double().requires_grad_()
        y = F.conv2d(xd, wd, bd, stride=stride, padding=pad)
        gy = torch.randn(y.shape)
        y.backward(gy.double())
        tensors.update({
            f"{name}.input": x, f"{name}.weight": wt, f"{name}.bias": b,
            f"{name}.output": f32(y), f"{name}.grad_output": gy,
            f"{name}.grad_input": f32(xd.grad), f"{name}.grad_weight": f32(wd.grad),
            f"{name}.grad_bias": f32(bd.grad),
        })
        meta[f"{name}.kernel"] = k
        meta[f"{name}.stride"] = stride
        meta[f"{name}.pad"] = pad
    save("golden_conv.safetensors", tensors, meta)


def pool_fixture():
    torch.manual_seed(2)
    # name, op, n, c, h, w, k, stride, pad
    configs = [
        ("maxpool_k2_s2", "max", 2, 3, 8, 8, 2, 2, 0),
        ("maxpool_k3_s2_p1", "max", 2, 4, 9, 7, 3, 2, 1),
        ("avgpool_k2_s2", "avg", 2, 3, 8, 6, 2, 2, 0),
        ("avgpool_k3_s2_p1", "avg", 2, 4, 9, 7, 3, 2, 1),
        ("global_avgpool", "global", 2, 5, 7, 6, 0, 0, 0),
    ]
    tensors, meta = {}, {"configs": ",".join(c[0] for c in configs)}
    for name, op, n, c, h, w, k, stride, pad in configs:
        x = torch.randn(n, c, h, w)
        xd = x.double().requires_grad_()
        if op == "max":
            y = F.max_pool2d(xd, k, stride=stride, padding=pad)
        elif op == "avg":
            y = F.avg_pool2d(xd, k, stride=stride, padding=pad)  # count_include_pad=True
        else:
            y = F.adaptive_avg_pool2d(xd, 1)
        gy = torch.randn(y.shape)
        y.backward(gy.double())
        tensors.update({
            f"{name}.input": x, f"{name}.output": f32(y), f"{name}.grad_output": gy,
            f"{name}.grad_input": f32(xd.grad),
        })
        meta[f"{name}.op"] = op
        meta[f"{name}.kernel"] = k
        meta[f"{name}.stride"] = stride
        meta[f"{name}.pad"] = pad
    save("golden_pool.safetensors", tensors, meta)


def dense_loss_fixture():
    torch.manual_seed(3)
    tensors, meta = {}, {}
    # linear
    n, fin, fout = 5, 13, 7
    x = torch.randn(n, fin)
    wt = torch.randn(fout, fin) * (1.0 / math.sqrt(fin))
    b = torch.randn(fout)
    xd, wd, bd = (t.double().requires_grad_() for t in (x, wt, b))
    y = F.linear(xd, wd, bd)
    gy = torch.randn(y.shape)
    y.backward(gy.double())
    tensors.update({
        "linear.input": x, "linear.weight": wt, "linear.bias": b, "linear.output": f32(y),
        "linear.grad_output": gy, "linear.grad_input": f32(xd.grad),
        "linear.grad_weight": f32(wd.grad), "linear.grad_bias": f32(bd.grad),
    })
    # cross-entropy, mean reduction, with and without label smoothing
    n, classes = 6, 10
    for name, smoothing in (("cross_entropy", 0.0), ("cross_entropy_ls", 0.1)):
        z = torch.randn(n, classes) * 3.0
        labels = torch.randint(0, classes, (n,), dtype=torch.int64)
        zd = z.double().requires_grad_()
        loss = F.cross_entropy(zd, labels, label_smoothing=smoothing)
        loss.backward()
        tensors.update({
            f"{name}.logits": z, f"{name}.labels": labels,
            f"{name}.loss": f32(loss.reshape(1)), f"{name}.grad_logits": f32(zd.grad),
        })
        meta[f"{name}.label_smoothing"] = smoothing
    # mse, mean reduction
    p = torch.randn(4, 9)
    t = torch.randn(4, 9)
    pd = p.double().requires_grad_()
    loss = F.mse_loss(pd, t.double())
    loss.backward()
    tensors.update({"mse.pred": p, "mse.target": t, "mse.loss": f32(loss.reshape(1)),
                    "mse.grad_pred": f32(pd.grad)})
    save("golden_dense_loss.safetensors", tensors, meta)


OPTIM_STEPS = 5
OPTIM_SHAPES = [(7,), (4, 5), (3, 2, 3, 3)]
OPTIM_LRS = [0.05, 0.04, 0.03, 0.05, 0.02]  # a different lr per step, as a schedule would give


def optim_fixture():
    configs = [
        ("sgd_momentum_wd", "sgd", dict(momentum=0.9, weight_decay=1e-2)),
        ("sgd_nesterov", "sgd", dict(momentum=0.9, nesterov=True)),
        ("sgd_plain_wd", "sgd", dict(weight_decay=1e-2)),
        ("adam_wd", "adam", dict(weight_decay=1e-2)),
        ("adamw_wd", "adamw", dict(weight_decay=1e-2)),
    ]
    tensors = {}
    meta = {"configs": ",".join(c[0] for c in configs), "steps": OPTIM_STEPS,
            "num_params": len(OPTIM_SHAPES), "lrs": ",".join(repr(v) for v in OPTIM_LRS)}
    for ci, (name, kind, hyper) in enumerate(configs):
        torch.manual_seed(100 + ci)
        params = [torch.nn.Parameter(torch.randn(s)) for s in OPTIM_SHAPES]
        for i, p in enumerate(params):
            tensors[f"{name}.p{i}.initial"] = p.detach().clone()
        cls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[kind]
        opt = cls(params, lr=OPTIM_LRS[0], **hyper)
        for step in range(OPTIM_STEPS):
            for g in opt.param_groups:
                g["lr"] = OPTIM_LRS[step]
            for i, p in enumerate(params):
                p.grad = torch.randn(p.shape)
                tensors[f"{name}.p{i}.grad{step}"] = p.grad.clone()
            opt.step()
        for i, p in enumerate(params):
            tensors[f"{name}.p{i}.final"] = p.detach().clone()
            for key, value in opt.state[p].items():
                if key == "step" or value is None:  # plain SGD keeps momentum_buffer = None
                    continue
                tensors[f"{name}.p{i}.{key}"] = value.detach().clone()
        meta[f"{name}.kind"] = kind
        full = dict(opt.defaults)
        for key in ("momentum", "dampening", "weight_decay", "eps"):
            if key in full:
                meta[f"{name}.{key}"] = repr(float(full[key]))
        if "nesterov" in full:
            meta[f"{name}.nesterov"] = int(full["nesterov"])
        if "betas" in full:
            meta[f"{name}.beta1"], meta[f"{name}.beta2"] = (repr(float(b)) for b in full["betas"])
    save("golden_optim.safetensors", tensors, meta)


def lr_values(make, steps, base_lr):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=base_lr)
    sched = make(opt)
    values = []
    for _ in range(steps):
        values.append(opt.param_groups[0]["lr"])  # the lr this optimizer step uses
        opt.step()
        sched.step()
    return torch.tensor(values, dtype=torch.float64)


def ours(kind, base, step, warmup=0, step_size=0, gamma=0.1, total=0, min_lr=0.0):
    """The formula graft's learning_rate_at implements, to check the warmup case here."""
    if step < warmup:
        return base * (step + 1) / warmup
    s = step - warmup
    if kind == "constant":
        return base
    if kind == "step":
        return base * gamma ** (s // step_size)
    frac = min(1.0, s / (total - warmup))
    return min_lr + (base - min_lr) * 0.5 * (1.0 + math.cos(math.pi * frac))


def lr_fixture():
    sched = torch.optim.lr_scheduler
    tensors, meta = {}, {}
    base = 0.1
    # cosine: T_max = total steps, eta_min; compared over steps 0..T_max
    t_max, eta_min = 40, 1e-3
    tensors["cosine"] = lr_values(lambda o: sched.CosineAnnealingLR(o, T_max=t_max, eta_min=eta_min), t_max + 1, base)
    meta.update({"cosine.base_lr": base, "cosine.total_steps": t_max, "cosine.min_lr": eta_min})
    # step: StepLR(step_size, gamma), stepped per iteration
    step_size, gamma, n = 7, 0.5, 30
    tensors["step"] = lr_values(lambda o: sched.StepLR(o, step_size=step_size, gamma=gamma), n, base)
    meta.update({"step.base_lr": base, "step.step_size": step_size, "step.gamma": gamma})
    # warmup then cosine: LinearLR(1/W -> 1 over W-1 steps) then CosineAnnealingLR(T_max = total - W)
    warmup, total, eta_min = 5, 30, 1e-3
    values = lr_values(lambda o: sched.SequentialLR(o, [
        sched.LinearLR(o, start_factor=1.0 / warmup, end_factor=1.0, total_iters=warmup - 1),
        sched.CosineAnnealingLR(o, T_max=total - warmup, eta_min=eta_min)], milestones=[warmup]), total + 1, base)
    expected = [ours("cosine", base, s, warmup=warmup, total=total, min_lr=eta_min) for s in range(total + 1)]
    err = max(abs(a - b) for a, b in zip(values.tolist(), expected)) / base
    if err < 1e-9:
        tensors["warmup_cosine"] = values
        meta.update({"warmup_cosine.base_lr": base, "warmup_cosine.warmup_steps": warmup,
                     "warmup_cosine.total_steps": total, "warmup_cosine.min_lr": eta_min})
    else:
        print(f"SequentialLR(LinearLR, CosineAnnealingLR) differs from graft's warmup by {err:.3g}: "
              "not stored; the warmup is tested analytically", file=sys.stderr)
    save("golden_lr.safetensors", tensors, meta)


def main():
    warnings.filterwarnings("ignore", category=UserWarning, module="torch.optim.lr_scheduler")
    os.makedirs(OUT, exist_ok=True)
    conv_fixture()
    pool_fixture()
    dense_loss_fixture()
    optim_fixture()
    lr_fixture()


if __name__ == "__main__":
    main()
