"""What the program writes and the policy pack reads: label and annotation keys, and the one
image-pinning rule. Dependency-free (the engine runs the pack with only ``policy/`` on its path),
imported by the program's components and settings and by the pack's rules alike.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

TGI_APP = "text-generation-inference"
"""Value of every serving pod's ``run`` label, TGI's and vLLM's alike (the name is from the TGI-only days: a
Deployment's selector can't change in place), and the traffic Service's name."""
RUN_LABEL = "run"
"""Pod label of every serving pod (value :data:`TGI_APP`), whatever its engine; the traffic Service selects by
it alone."""
VARIANT_LABEL = "type"
"""Pod label telling stable from canary (the Datashim tutorial's)."""

DECLARED_PERCENT_ANNOTATION = "llm-ab/declared-canary-percent"
"""TGI Deployment annotation: the canary percent the stack declares."""
SPLIT_TOLERANCE_ANNOTATION = "llm-ab/split-tolerance"
"""TGI Deployment annotation: how many points the effective split may be from the declared one."""

COMPONENT_LABEL = "app.kubernetes.io/component"
WEIGHTS_COMPONENT = "object-store"
"""``app.kubernetes.io/component`` of MinIO's objects, including the weights claim."""

GPU_RESOURCE = "nvidia.com/gpu"
"""Extended resource of an NVIDIA GPU; also the key of the GPU nodes' taint."""
GPU_TAINT_KEY = GPU_RESOURCE
GPU_POOL_LABEL = "llm-ab/gpu-pool"
"""Node label with the GPU pool's name; TGI's node selector and the device plugin's affinity use it."""
GPU_PRESENT_LABEL = "nvidia.com/gpu.present"
"""Node label NVIDIA's GPU Feature Discovery (GPU Operator) sets to ``"true"`` on GPU nodes; on the local
platform the serving pods select it unless ``serving.nodeSelector`` says otherwise (the local cluster's simulated
GPU nodes carry it too)."""
NODE_KIND_LABEL = "llm-ab.dev/node"
"""Node label of the embedded local cluster (scripts/local-cluster): :data:`REAL_NODE` on the node whose pods really
run (kubelet and containerd), :data:`SIMULATED_NODE` on kwok's nodes (pods faked Running, Jobs complete unrun);
deploy/reality.py reports after ``up`` which pods ran where."""
REAL_NODE = "real"
SIMULATED_NODE = "simulated"
SIMULATED_TAINT_KEY = "llm-ab.dev/simulated"
"""Taint key (``llm-ab.dev/simulated=true:NoSchedule``) of the local cluster's simulated CPU node: only the parts a
stack simulates (``local.simulate``) tolerate it, so every other pod lands on the real node."""
INTERNAL_CIDRS = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16")
"""Never "the internet": private networks (pods, Services, the VPC and its nodes, the API server's
addresses), carrier-grade NAT (some pod networks) and link-local (the cloud's instance metadata service,
i.e. the node's role). The default of ``network.internalCidrs`` and of the pack's
``k8s-egress-excludes-internal``."""
MIN_GPU_DISK_GIB = 100
"""Smallest GPU node disk: the TGI image (~10 GB) and its caches; EKS's own default is 20 GiB."""

FLOATING_TAGS = ("latest", "main", "master", "stable", "edge", "nightly", "dev", "head")
"""Tags that move; never a pin (compared case-insensitively)."""

_IMAGE_REFERENCE = re.compile(
    r"^(?P<repo>[a-z0-9]+([._/-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(?:@(?P<digest>sha256:[a-f0-9]{64}))?$"
)


def image_is_pinned(image: str, floating_tags: Iterable[str] = FLOATING_TAGS) -> bool:
    """True when ``image`` is a well-formed reference pinned by a sha256 digest, or by a tag that
    names a version (it has a digit) and is not a floating one. ``repo``, ``repo:latest`` and
    ``repo:head`` are not pinned; ``repo:1.3.4`` and ``repo@sha256:<64 hex>`` are."""
    match = _IMAGE_REFERENCE.match(image)
    if not match:
        return False
    if match.group("digest"):
        return True
    tag = match.group("tag")
    floating = {t.lower() for t in floating_tags}
    return bool(tag) and tag.lower() not in floating and any(ch.isdigit() for ch in tag)
