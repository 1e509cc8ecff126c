#!/usr/bin/env python3
"""PyTorch baseline for `graft bench`: the same training-step configurations, timed the same way.

One run = one configuration (model, input size, batch, mode, precision, implementation).
It builds a torchvision model with random weights (never downloads), puts a fixed
synthetic batch on the device once, runs `--warmup` untimed training steps and then
`--steps` timed ones (CUDA events around each step; time.perf_counter on the CPU), and
prints one JSON object with the same keys as `graft bench --json`.

Modes (the same as graft's):
  frozen  the reference transfer recipe: base frozen (`requires_grad_(False)`, inference
          mode, so BatchNorm uses its running statistics), trainable head. VGG: the
          convolutional `features` then Flatten -> Linear(1024) -> ReLU -> Linear(classes);
          ResNet: everything but `fc`, then Linear(classes).
  full    the same network, everything trainable (BatchNorm in training mode).
  cached  base features computed once for the fixed synthetic batch, then head-only steps.

`--gemm N` instead times an NxN matrix product (bf16 by default) to measure the card's
matrix peak; see README.md.
"""
import argparse
import json
import math
import os
import platform
import shlex
import statistics
import sys
import time

try:
    import torch
    import torch.nn as nn
except ImportError as e:  # pragma: no cover
    sys.stderr.write("pytorch_baseline: cannot import torch (%s); use an interpreter with PyTorch "
                     "(here: /usr/bin/python3)\n" % e)
    sys.exit(2)

EXIT_UNSUPPORTED = 3  # the requested configuration cannot run with this PyTorch (e.g. no torch.compile)


def log(msg):
    sys.stderr.write("pytorch_baseline: %s\n" % msg)
    sys.stderr.flush()


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="vgg16", choices=["vgg16", "vgg11", "resnet18", "resnet50"])
    p.add_argument("--input", type=int, default=224, help="square input size in pixels (default 224)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--mode", default="frozen", choices=["frozen", "full", "cached"])
    p.add_argument("--precision", default="fp32", choices=["fp32", "tf32", "bf16"],
                   help="fp32: TF32 off for matmul and cuDNN; tf32: TF32 on; bf16: autocast to bfloat16 "
                        "(parameters and optimizer state stay fp32)")
    p.add_argument("--impl", default="eager", choices=["eager", "compile"],
                   help="compile = torch.compile(model) (needs PyTorch 2.0+)")
    p.add_argument("--compile-mode", default=None,
                   help="mode for torch.compile (default: PyTorch's default; e.g. max-autotune)")
    cl = p.add_mutually_exclusive_group()
    cl.add_argument("--channels-last", dest="channels_last", action="store_true", default=None,
                    help="NHWC model and inputs (default: on for bf16, off otherwise)")
    cl.add_argument("--no-channels-last", dest="channels_last", action="store_false")
    p.add_argument("--steps", type=int, default=50, help="timed steps (default 50)")
    p.add_argument("--warmup", type=int, default=10, help="untimed steps first (default 10)")
    p.add_argument("--device", default=None, choices=["cuda", "cpu"],
                   help="default: cuda when available, else cpu")
    p.add_argument("--json", nargs="?", const="-", default="-", metavar="PATH",
                   help="write the JSON result to PATH (default, or '-': stdout)")
    p.add_argument("--gemm", type=int, default=0, metavar="N",
                   help="instead of a model: time an NxN matrix product and report TFLOP/s")
    p.add_argument("--gemm-dtype", default="bf16", choices=["bf16", "fp32", "tf32", "fp16"],
                   help="operand type for --gemm (default bf16)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    if a.channels_last is None:
        a.channels_last = a.precision == "bf16"
    if a.device is None:
        a.device = "cuda" if torch.cuda.is_available() else "cpu"
    if a.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda, but torch.cuda.is_available() is False")
    for name in ("input", "batch", "classes", "steps"):
        if getattr(a, name) < 1:
            p.error("--%s must be at least 1" % name)
    if a.warmup < 0:
        p.error("--warmup must be at least 0")
    return a


# ----------------------------------------------------------------------------- environment

def versions(device):
    v = {
        "torch": torch.__version__,
        "torchvision": None,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "python": platform.python_version(),
    }
    try:
        import torchvision
        v["torchvision"] = torchvision.__version__
    except ImportError:
        pass
    if device.type == "cuda":
        try:
            props = torch.cuda.get_device_properties(device)
            v["capability"] = "%d.%d" % (props.major, props.minor)
            v["multiprocessors"] = props.multi_processor_count
            v["device_memory_bytes"] = props.total_memory
        except Exception:  # pragma: no cover
            pass
    return v


def device_name(device):
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return "cpu: %s (%d threads)" % (name, torch.get_num_threads())


def command_line():
    return " ".join(shlex.quote(x) for x in [os.path.basename(sys.executable)] + sys.argv)


def set_precision(precision, device):
    tf32 = precision == "tf32"
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cudnn.benchmark = True  # PyTorch's best convolution algorithms
    if hasattr(torch, "set_float32_matmul_precision"):
        torch.set_float32_matmul_precision("high" if tf32 else "highest")


def autocast_ctx(precision, device):
    if precision != "bf16":
        return _NullCtx()
    try:
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    except (AttributeError, RuntimeError) as e:
        log("bf16 autocast unavailable on %s with torch %s: %s" % (device.type, torch.__version__, e))
        sys.exit(EXIT_UNSUPPORTED)


class _NullCtx:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


# ----------------------------------------------------------------------------- timing

class Timer:
    """Per-step times in ms: CUDA events on the GPU (recorded without synchronizing between
    steps, so queued launches overlap as in training), perf_counter on the CPU."""

    def __init__(self, device):
        self.cuda = device.type == "cuda"
        self.pairs = []

    def start(self):
        if self.cuda:
            e = torch.cuda.Event(enable_timing=True)
            e.record()
            self.pairs.append([e, None])
        else:
            self.pairs.append([time.perf_counter(), None])

    def stop(self):
        if self.cuda:
            e = torch.cuda.Event(enable_timing=True)
            e.record()
            self.pairs[-1][1] = e
        else:
            self.pairs[-1][1] = time.perf_counter()

    def ms(self):
        if self.cuda:
            torch.cuda.synchronize()
            return [a.elapsed_time(b) for a, b in self.pairs]
        return [(b - a) * 1e3 for a, b in self.pairs]


def percentile(xs, q):
    """Linear interpolation between closest ranks (numpy's default)."""
    s = sorted(xs)
    if len(s) == 1:
        return s[0]
    pos = (len(s) - 1) * q / 100.0
    lo = int(math.floor(pos))
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


# ----------------------------------------------------------------------------- models

class TransferNet(nn.Module):
    def __init__(self, base, head):
        super().__init__()
        self.base = base
        self.head = head

    def forward(self, x):
        return self.head(self.base(x))


def build_model(name, input_size, classes):
    try:
        import torchvision.models as tvm
    except ImportError:
        log("torchvision is needed for the models")
        sys.exit(2)
    ctor = getattr(tvm, name)
    try:
        net = ctor(weights=None)  # random weights: nothing is downloaded
    except TypeError:  # torchvision < 0.13
        net = ctor(pretrained=False)
    if name.startswith("vgg"):
        base = net.features  # Keras VGG16(include_top=False): no adaptive pool, flatten the conv output
        with torch.no_grad():
            feat = base(torch.zeros(1, 3, input_size, input_size)).numel()
        head = nn.Sequential(nn.Flatten(), nn.Linear(feat, 1024), nn.ReLU(inplace=True), nn.Linear(1024, classes))
    else:
        base = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool,
                             net.layer1, net.layer2, net.layer3, net.layer4, net.avgpool)
        head = nn.Sequential(nn.Flatten(), nn.Linear(net.fc.in_features, classes))
    return TransferNet(base, head)


def count_macs(module, example):
    """Multiply-accumulates per example of every Conv2d and Linear, counted from the shapes seen
    by forward hooks on one forward pass (inference mode, batch 1, on the CPU in fp32)."""
    total = [0]

    def conv_hook(m, inp, out):
        kh, kw = m.kernel_size
        total[0] += out.numel() * (m.in_channels // m.groups) * kh * kw

    def linear_hook(m, inp, out):
        total[0] += out.numel() * m.in_features

    hooks = []
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            out = module(example)
    finally:
        for h in hooks:
            h.remove()
        module.train(was_training)
    return total[0], out


def flops_per_image(model, input_size, mode):
    """Forward = 2 FLOPs per MAC; a trained layer costs 3x its forward (forward, gradient of the
    input, gradient of the weights). frozen: base forward + head forward/backward;
    cached: head forward/backward; full: 3x the whole forward."""
    x = torch.randn(1, 3, input_size, input_size)
    base_macs, feat = count_macs(model.base, x)
    head_macs, _ = count_macs(model.head, feat)
    if mode == "full":
        return 3 * 2 * (base_macs + head_macs)
    if mode == "frozen":
        return 2 * base_macs + 3 * 2 * head_macs
    return 3 * 2 * head_macs


# ----------------------------------------------------------------------------- runs

def run_model(a, device):
    if a.impl == "compile" and not hasattr(torch, "compile"):
        log("torch.compile is not available in torch %s (needs PyTorch 2.0 or newer); "
            "skipping --impl compile" % torch.__version__)
        sys.exit(EXIT_UNSUPPORTED)
    torch.manual_seed(a.seed)
    set_precision(a.precision, device)
    model = build_model(a.model, a.input, a.classes)
    flops = flops_per_image(model, a.input, a.mode)
    fmt = torch.channels_last if a.channels_last else torch.contiguous_format
    model = model.to(device=device, memory_format=fmt)
    amp = lambda: autocast_ctx(a.precision, device)

    if a.mode in ("frozen", "cached"):
        model.base.requires_grad_(False)
        model.base.eval()  # frozen base runs in inference mode (BatchNorm running statistics)

    # Synthetic data, generated on the device once: two batches, alternated, so that
    # consecutive steps do not read the very same input buffer. Never zeros.
    gen = torch.Generator(device=device)
    gen.manual_seed(a.seed)
    batches = []
    for _ in range(2):
        x = torch.randn(a.batch, 3, a.input, a.input, device=device, generator=gen)
        x = x.contiguous(memory_format=fmt)
        y = torch.randint(0, a.classes, (a.batch,), device=device, generator=gen)
        batches.append((x, y))

    if a.mode == "cached":
        with torch.no_grad(), amp():
            batches = [(model.base(x), y) for x, y in batches]
        net = model.head
        del model  # the base is not needed for head-only steps: free it before measuring memory
    else:
        net = model
    sync(device)

    compile_seconds = None
    if a.impl == "compile":
        kw = {"mode": a.compile_mode} if a.compile_mode else {}
        step_net = torch.compile(net, **kw)
    else:
        step_net = net

    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()

    def step(i):
        x, y = batches[i % len(batches)]
        opt.zero_grad(set_to_none=True)
        with amp():
            out = step_net(x)
            loss = loss_fn(out.float(), y)
        loss.backward()
        opt.step()
        return loss

    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)

    warmup = a.warmup
    if a.impl == "compile" and warmup < 2:
        warmup = 2  # the first steps compile (forward, backward); keep them out of the timing
        log("compile: using 2 warmup steps")
    t0 = time.perf_counter()
    for i in range(warmup):
        loss = step(i)
        if i == 0:
            sync(device)
            if a.impl == "compile":
                compile_seconds = time.perf_counter() - t0
    sync(device)

    timer = Timer(device)
    for i in range(a.steps):
        timer.start()
        loss = step(warmup + i)
        timer.stop()
    ms = timer.ms()
    final_loss = float(loss.detach().float().item())
    if not math.isfinite(final_loss):
        log("loss is not finite (%r): the timing is not of a sane run" % final_loss)

    peak = reserved = None
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device)
        reserved = torch.cuda.max_memory_reserved(device)

    p50 = statistics.median(ms)
    ips = statistics.median([a.batch * 1e3 / m for m in ms if m > 0]) if any(m > 0 for m in ms) else None
    return {
        "tool": "pytorch",
        "model": a.model,
        "input": a.input,
        "batch": a.batch,
        "classes": a.classes,
        "mode": a.mode,
        "precision": a.precision,
        "impl": a.impl,
        "channels_last": bool(a.channels_last),
        "steps": a.steps,
        "warmup": warmup,
        "images_per_second": ips,
        "ms_per_step": {"p10": percentile(ms, 10), "p50": p50, "p90": percentile(ms, 90)},
        "peak_bytes": peak,
        "peak_reserved_bytes": reserved,
        "flops_per_image": flops,
        "tflops": (flops * ips / 1e12) if ips else None,
        "trainable_parameters": sum(p.numel() for p in params),
        "compile_seconds": compile_seconds,
        "final_loss": final_loss,
        "device": device_name(device),
        "versions": versions(device),
        "command": command_line(),
    }


def run_gemm(a, device):
    n = a.gemm
    dt = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32, "tf32": torch.float32}[a.gemm_dtype]
    set_precision("tf32" if a.gemm_dtype == "tf32" else "fp32", device)
    gen = torch.Generator(device=device)
    gen.manual_seed(a.seed)
    # Random operands (never zeros), three sets rotated so no run reuses the previous one's inputs.
    sets = [(torch.randn(n, n, device=device, generator=gen).to(dt),
             torch.randn(n, n, device=device, generator=gen).to(dt)) for _ in range(3)]
    c = torch.empty(n, n, device=device, dtype=dt)
    for i in range(max(a.warmup, 1)):
        torch.matmul(*sets[i % 3], out=c)
    sync(device)
    timer = Timer(device)
    for i in range(a.steps):
        timer.start()
        torch.matmul(*sets[i % 3], out=c)
        timer.stop()
    ms = timer.ms()
    # A check that the product was computed: compare one row against float64.
    a0, b0 = sets[(a.steps - 1) % 3]
    ref = a0[:1].double() @ b0.double()
    rel = float((c[:1].double() - ref).norm() / ref.norm())
    p50 = statistics.median(ms)
    flop = 2.0 * n * n * n
    return {
        "tool": "pytorch",
        "kind": "gemm",
        "n": n,
        "dtype": a.gemm_dtype,
        "steps": a.steps,
        "ms": {"p10": percentile(ms, 10), "p50": p50, "p90": percentile(ms, 90)},
        "tflops": flop / (p50 * 1e-3) / 1e12 if p50 > 0 else None,
        "rel_error_row0": rel,
        "device": device_name(device),
        "versions": versions(device),
        "command": command_line(),
    }


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    device = torch.device(a.device)
    result = run_gemm(a, device) if a.gemm else run_model(a, device)
    text = json.dumps(result, indent=2, sort_keys=False)
    if a.json in (None, "-"):
        sys.stdout.write(text + "\n")
    else:
        d = os.path.dirname(a.json)
        if d:
            os.makedirs(d, exist_ok=True)
        with open(a.json, "w") as f:
            f.write(text + "\n")
    if a.gemm:
        log("gemm %d %s: %.3f ms, %.2f TFLOP/s" % (a.gemm, a.gemm_dtype, result["ms"]["p50"], result["tflops"] or 0))
    else:
        log("%s %s %s %s b%d in%d: %.1f img/s, p50 %.2f ms, peak %s, %.2f TFLOP/s" % (
            a.model, a.mode, a.precision, a.impl + ("+cl" if a.channels_last else ""), a.batch, a.input,
            result["images_per_second"] or 0, result["ms_per_step"]["p50"],
            "%.0f MiB" % (result["peak_bytes"] / 2**20) if result["peak_bytes"] else "n/a",
            result["tflops"] or 0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
