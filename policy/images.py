"""The ``k8s-pinned-images`` rule: every container image pinned by a version tag or a digest
(the one rule of :mod:`contract`, with the pack's configurable floating tags and registries)."""

from __future__ import annotations

from pulumi_policy import PolicyConfigSchema, ReportViolation, ResourceValidationArgs

from .contract import FLOATING_TAGS, image_is_pinned
from .props import config_of, container_name, get, pod_template

PINNED_IMAGES_SCHEMA = PolicyConfigSchema(properties={
    "floatingTags": {
        "type": "array", "items": {"type": "string"},
        "default": list(FLOATING_TAGS),
        "description": "Tags that move (compared case-insensitively); never accepted as a pin.",
    },
    "allowedRegistries": {
        "type": "array", "items": {"type": "string"}, "default": [],
        "description": "Registry hosts images may come from (e.g. ghcr.io); empty allows any.",
    },
})

def image_registry(image: str) -> str:
    """Registry host of an image reference; Docker Hub for bare names like ``python:3.11``."""
    first, sep, _ = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def pinned_images(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Every container image is pinned by an exact version tag or a digest."""
    pod = pod_template(args.resource_type, args.props, args.name)
    if pod is None:
        args.not_applicable("not a workload")
        return
    cfg = config_of(args, PINNED_IMAGES_SCHEMA)
    registries = list(cfg["allowedRegistries"])
    for c in pod.containers():
        image = get(c, "image")
        if not isinstance(image, str) or not image:
            report_violation(f"container '{container_name(c)}' sets no image", None)
            continue
        if not image_is_pinned(image, cfg["floatingTags"]):
            report_violation(f"container '{container_name(c)}' uses unpinned image '{image}'", None)
        if registries and image_registry(image) not in registries:
            report_violation(f"container '{container_name(c)}' uses image '{image}' from registry "
                             f"'{image_registry(image)}', not one of {', '.join(registries)}", None)
