#!/usr/bin/python3
"""Writes the torchvision fixtures that tests/torchvision_parity_test.cpp and
tests/zoo_test.cpp compare against. No downloads: every weight is random.

Run with the system Python (Debian python3-torch 1.13, python3-torchvision 0.14, the
safetensors package):
    /usr/bin/python3 tests/golden/make_torchvision.py
The fixtures are committed: CI has no torch. Everything is seeded.

torchvision_state_dicts.safetensors
    __metadata__[<arch>] = JSON list of [key, shape] of torchvision's state_dict, in order,
    for the full-size models (1000 classes), plus <arch>.parameters = the parameter count
    (buffers excluded). One tiny placeholder tensor.
torchvision_<arch>_small.safetensors  (vgg11, resnet18, resnet50)
    torchvision's own classes with every width divided by `width_divisor` (VGG's
    classifier hidden width `classifier_width / width_divisor`), torchvision's names; all
    parameters and BN running statistics random; BN in eval mode. Holds the state_dict
    under its own names, "input.x" (NCHW), "output.logits" (eval mode), and metadata
    (architecture, width_divisor, classifier_width, num_classes, input size).
torchvision_ops.safetensors
    BatchNorm2d in training mode (forward, backward, updated running statistics) and in
    eval mode, and AdaptiveAvgPool2d at non-dividing sizes; computed in float64 from
    float32 inputs, stored in float32 (NCHW).
"""
import json
import math
import os
import struct

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet
from torchvision.models.vgg import VGG, cfgs, make_layers

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")


def save(name, tensors, metadata):
    path = os.path.join(OUT, name)
    metadata = dict(metadata)
    metadata["generator"] = "tests/golden/make_torchvision.py"
    metadata["torch_version"] = torch.__version__
    metadata["torchvision_version"] = torchvision.__version__
    tensors = {k: v.detach().contiguous() for k, v in tensors.items()}
    blob = st_save(tensors, metadata={k: str(v) for k, v in metadata.items()})
    # Sorted header keys so a rerun gives identical bytes.
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.dumps(json.loads(blob[8:8 + n]), sort_keys=True, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)
    blob = struct.pack("<Q", len(header)) + header + blob[8 + n:]
    loaded = st_load(blob)
    assert loaded.keys() == tensors.keys() and all(torch.equal(loaded[k], tensors[k]) for k in tensors)
    with open(path, "wb") as f:
        f.write(blob)
    size = os.path.getsize(path)
    assert size < 1 << 20, f"{path} is {size} bytes; keep fixtures under 1 MB"
    print(f"{path}: {size} bytes, {len(tensors)} tensors")


def f32(t):
    return t.detach().to(torch.float32).contiguous()


# --- full-size state_dict names and shapes ---

FULL = {
    "vgg11": torchvision.models.vgg11, "vgg13": torchvision.models.vgg13,
    "vgg16": torchvision.models.vgg16, "vgg19": torchvision.models.vgg19,
    "resnet18": torchvision.models.resnet18, "resnet34": torchvision.models.resnet34,
    "resnet50": torchvision.models.resnet50,
}


def state_dict_fixture():
    meta = {}
    for arch, ctor in FULL.items():
        torch.manual_seed(0)
        model = ctor(weights=None, num_classes=1000)
        meta[arch] = json.dumps([[k, list(v.shape)] for k, v in model.state_dict().items()], separators=(",", ":"))
        meta[f"{arch}.parameters"] = sum(p.numel() for p in model.parameters())
        del model
    save("torchvision_state_dicts.safetensors", {"placeholder": torch.zeros(1)}, meta)


# --- small models with torchvision's classes and names ---

def randomize(model):
    """Every parameter and BN buffer random, at scales that keep activations O(1)."""
    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            fan_in = m.weight[0].numel()
            m.weight.data = torch.randn(m.weight.shape) * math.sqrt(2.0 / fan_in)
            if m.bias is not None:
                m.bias.data = 0.1 * torch.randn(m.bias.shape)
        elif isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.weight.data = torch.rand(c) + 0.5
            m.bias.data = 0.1 * torch.randn(c)
            m.running_mean.data = 0.2 * torch.randn(c)
            m.running_var.data = torch.rand(c) + 0.5
            m.num_batches_tracked.fill_(int(torch.randint(1, 1000, ())))


def small_vgg(arch, divisor, classifier_width, num_classes):
    cfg_name = {"vgg11": "A", "vgg13": "B", "vgg16": "D", "vgg19": "E"}[arch]
    cfg = [v if v == "M" else v // divisor for v in cfgs[cfg_name]]
    model = VGG(make_layers(cfg, batch_norm=False), num_classes=num_classes, init_weights=False)
    hidden = classifier_width // divisor
    last = cfg[-2]
    model.classifier = nn.Sequential(
        nn.Linear(last * 7 * 7, hidden), nn.ReLU(True), nn.Dropout(0.5),
        nn.Linear(hidden, hidden), nn.ReLU(True), nn.Dropout(0.5),
        nn.Linear(hidden, num_classes))
    return model


class SmallResNet(ResNet):
    """torchvision's ResNet with every width divided by `divisor` (same module names)."""

    def __init__(self, block, layers, divisor, num_classes):
        self._divisor = divisor
        self._first = True
        super().__init__(block, layers, num_classes=num_classes)
        stem = 64 // divisor
        self.conv1 = nn.Conv2d(3, stem, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.fc = nn.Linear(512 // divisor * block.expansion, num_classes)

    def _make_layer(self, block, planes, blocks, stride=1, dilate=False):
        if self._first:  # torchvision starts from inplanes = 64
            self.inplanes = 64 // self._divisor
            self._first = False
        return super()._make_layer(block, planes // self._divisor, blocks, stride, dilate)


def small_fixture(arch, model, meta, input_hw, seed):
    torch.manual_seed(seed)
    randomize(model)
    model.eval()
    x = torch.randn(2, 3, input_hw, input_hw)
    with torch.no_grad():
        logits = model(x)
    tensors = dict(model.state_dict())
    tensors["input.x"] = x
    tensors["output.logits"] = logits
    meta = dict(meta, architecture=arch, input_hw=input_hw, num_classes=logits.shape[1])
    save(f"torchvision_{arch}_small.safetensors", tensors, meta)


def small_fixtures():
    torch.manual_seed(10)
    small_fixture("vgg11", small_vgg("vgg11", 16, 512, 10),
                  {"width_divisor": 16, "classifier_width": 512}, 32, 11)
    torch.manual_seed(20)
    small_fixture("resnet18", SmallResNet(BasicBlock, [2, 2, 2, 2], 16, 10),
                  {"width_divisor": 16, "classifier_width": 4096}, 64, 21)
    torch.manual_seed(30)
    small_fixture("resnet50", SmallResNet(Bottleneck, [3, 4, 6, 3], 16, 7),
                  {"width_divisor": 16, "classifier_width": 4096}, 32, 31)


# --- ops: batch norm (train and eval), adaptive average pool ---

def ops_fixture():
    torch.manual_seed(40)
    tensors = {}
    n, c, h, w = 4, 5, 3, 3
    x = torch.randn(n, c, h, w) * 2.0 + 0.7
    weight = torch.rand(c) + 0.5
    bias = torch.randn(c) * 0.3
    running_mean = torch.randn(c) * 0.2
    running_var = torch.rand(c) + 0.5
    tensors.update({"bn.input": x, "bn.weight": weight, "bn.bias": bias,
                    "bn.running_mean": running_mean, "bn.running_var": running_var})
    for mode in ("train", "eval"):
        bn = nn.BatchNorm2d(c).double()
        bn.weight.data = weight.double()
        bn.bias.data = bias.double()
        bn.running_mean.data = running_mean.double()
        bn.running_var.data = running_var.double()
        bn.train(mode == "train")
        xd = x.double().requires_grad_()
        y = bn(xd)
        gy = torch.randn(y.shape)
        y.backward(gy.double())
        tensors.update({
            f"bn_{mode}.output": f32(y), f"bn_{mode}.grad_output": gy,
            f"bn_{mode}.grad_input": f32(xd.grad), f"bn_{mode}.grad_weight": f32(bn.weight.grad),
            f"bn_{mode}.grad_bias": f32(bn.bias.grad),
            f"bn_{mode}.running_mean": f32(bn.running_mean), f"bn_{mode}.running_var": f32(bn.running_var),
            f"bn_{mode}.num_batches_tracked": bn.num_batches_tracked.clone(),
        })
    # adaptive average pool: shrinking and growing, non-dividing sizes
    for name, (hin, win, hout, wout) in {"adaptive_shrink": (10, 7, 4, 3), "adaptive_grow": (3, 2, 7, 5)}.items():
        x = torch.randn(2, 3, hin, win)
        xd = x.double().requires_grad_()
        y = F.adaptive_avg_pool2d(xd, (hout, wout))
        gy = torch.randn(y.shape)
        y.backward(gy.double())
        tensors.update({f"{name}.input": x, f"{name}.output": f32(y), f"{name}.grad_output": gy,
                        f"{name}.grad_input": f32(xd.grad)})
    save("torchvision_ops.safetensors", tensors, {"bn.eps": 1e-5, "bn.momentum": 0.1})


if __name__ == "__main__":
    torch.set_num_threads(2)
    state_dict_fixture()
    small_fixtures()
    ops_fixture()
