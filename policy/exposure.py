"""Rules on what the stack exposes and keeps: no public Services, a read-only Dataset, a protected
weights volume."""

from __future__ import annotations

from pulumi_policy import PolicyConfigSchema, ReportViolation, ResourceValidationArgs

from .contract import COMPONENT_LABEL, WEIGHTS_COMPONENT
from .props import DATASET, PVC, SERVICE, config_of, get, known

SERVICE_SCHEMA = PolicyConfigSchema(properties={
    "allowedTypes": {
        "type": "array", "items": {"type": "string"}, "default": ["ClusterIP", "ExternalName"],
        "description": "Service types allowed (add LoadBalancer or NodePort to expose services).",
    },
    "allowedServices": {
        "type": "array", "items": {"type": "string"}, "default": [],
        "description": "Services (metadata.name) that may use any type.",
    },
})


def no_public_services(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Services stay inside the cluster: no LoadBalancer or NodePort unless config allows it."""
    if args.resource_type != SERVICE:
        args.not_applicable("not a Service")
        return
    cfg = config_of(args, SERVICE_SCHEMA)
    name = known(args.props, "metadata", "name", default=args.name)
    kind = get(args.props, "spec", "type", default="ClusterIP")
    if name in cfg["allowedServices"] or kind in cfg["allowedTypes"]:
        return
    report_violation(f"Service '{name}' is of type {kind}, which exposes it outside the cluster; "
                     f"allowed types: {', '.join(cfg['allowedTypes'])}", None)


# --------------------------------------------------------------------------------------------------
# datashim-dataset-read-only


def dataset_read_only(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Datashim Datasets mount the weights read-only (spec.local.readonly is the string "true")."""
    if args.resource_type != DATASET:
        args.not_applicable("not a Datashim Dataset")
        return
    name = known(args.props, "metadata", "name", default=args.name)
    readonly = get(args.props, "spec", "local", "readonly")
    if readonly != "true":
        shown = "unset" if readonly is None else repr(readonly)
        report_violation(f"Dataset '{name}' is not read-only: spec.local.readonly is {shown}, "
                         "expected the string 'true'", None)


# --------------------------------------------------------------------------------------------------
# storage-weights-protected


def weights_volume_protected(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """The MinIO weights claim is protected, so no update or destroy deletes the weights.

    Only ``protect`` is visible to policies: the engine's AnalyzerResourceOptions (pulumi 3.272)
    carries protect, ignoreChanges, deleteBeforeReplace, aliases, customTimeouts,
    additionalSecretOutputs and parent, not retainOnDelete. A claim kept by retainOnDelete alone
    is therefore reported (advisory by default); tests/policy checks retainOnDelete under mocks.
    """
    labels = known(args.props, "metadata", "labels", default={})
    if args.resource_type != PVC or labels.get(COMPONENT_LABEL) != WEIGHTS_COMPONENT:
        args.not_applicable("not the weights volume claim")
        return
    if args.opts is not None and args.opts.protect:
        return
    name = known(args.props, "metadata", "name", default=args.name)
    report_violation(f"weights volume claim '{name}' is not protected; retainOnDelete is invisible to policies "
                     "(the engine sends only `protect`), so only protect=True satisfies this check", None)
