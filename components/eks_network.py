"""The VPC an EKS cluster runs in: public and private subnets in two zones, one NAT gateway.

Nodes and the control plane's network interfaces sit in the private subnets and reach the
internet (images, the Hugging Face Hub, S3) through a single NAT gateway in the first public
subnet: one NAT keeps a test cluster cheap, at the price of that zone being a single point of egress.
"""

from __future__ import annotations

import ipaddress
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

ZONES = 2
"""EKS needs subnets in at least two availability zones."""


def split_vpc_cidr(cidr: str, zones: int = ZONES) -> tuple[list[str], list[str]]:
    """(private, public) subnet blocks: the VPC block in quarters, private ones first (pods use them)."""
    network = ipaddress.IPv4Network(cidr)
    blocks = [str(b) for b in network.subnets(prefixlen_diff=2)]
    return blocks[:zones], blocks[zones:2 * zones]


@dataclass(frozen=True, kw_only=True)
class EksNetworkArgs:
    """Inputs for EksNetwork."""

    cidr: str
    """Private IPv4 block of the VPC, /16 to /20."""
    availability_zones: Sequence[str] = ()
    """Two zones; empty takes the first two available zones of the provider's region."""
    tags: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.availability_zones and len(self.availability_zones) != ZONES:
            raise ValueError(f"availability_zones must list {ZONES} zones, got {list(self.availability_zones)}")
        ipaddress.IPv4Network(self.cidr)


class EksNetwork(pulumi.ComponentResource):
    """VPC, internet gateway, NAT gateway, two public and two private subnets and their routes."""

    vpc_id: pulumi.Output[str]
    private_subnet_ids: pulumi.Output[list[str]]
    """Where the nodes and the control plane's interfaces go."""
    public_subnet_ids: pulumi.Output[list[str]]

    def __init__(self, name: str, args: EksNetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("llmab:compute:EksNetwork", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        if args.availability_zones:
            zones: pulumi.Output[list[str]] = pulumi.Output.from_input(list(args.availability_zones))
        else:
            # Regular zones only: Local and Wavelength Zones are opt-in and lack most GPU types.
            zones = aws.get_availability_zones_output(
                state="available",
                filters=[aws.GetAvailabilityZonesFilterArgs(name="opt-in-status", values=["opt-in-not-required"])],
                opts=pulumi.InvokeOutputOptions(parent=self)).names
        private_blocks, public_blocks = split_vpc_cidr(args.cidr)

        vpc = aws.ec2.Vpc(f"{name}-vpc", cidr_block=args.cidr, enable_dns_hostnames=True, enable_dns_support=True,
                          tags={**args.tags, "Name": f"{name}-vpc"}, opts=child)
        igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags={**args.tags, "Name": f"{name}-igw"},
                                      opts=child)
        public_rt = aws.ec2.RouteTable(
            f"{name}-public-rt", vpc_id=vpc.id,
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=igw.id)],
            tags={**args.tags, "Name": f"{name}-public"}, opts=child)

        public_subnets: list[aws.ec2.Subnet] = []
        private_subnets: list[aws.ec2.Subnet] = []
        for i in range(ZONES):
            zone = zones.apply(operator.itemgetter(i))
            public = aws.ec2.Subnet(
                f"{name}-public-{i}", vpc_id=vpc.id, cidr_block=public_blocks[i], availability_zone=zone,
                map_public_ip_on_launch=True,
                tags={**args.tags, "Name": f"{name}-public-{i}", "kubernetes.io/role/elb": "1"}, opts=child)
            aws.ec2.RouteTableAssociation(f"{name}-public-{i}-rt", subnet_id=public.id, route_table_id=public_rt.id,
                                          opts=child)
            public_subnets.append(public)
            private_subnets.append(aws.ec2.Subnet(
                f"{name}-private-{i}", vpc_id=vpc.id, cidr_block=private_blocks[i], availability_zone=zone,
                tags={**args.tags, "Name": f"{name}-private-{i}", "kubernetes.io/role/internal-elb": "1"},
                opts=child))

        eip = aws.ec2.Eip(f"{name}-nat-eip", domain="vpc", tags={**args.tags, "Name": f"{name}-nat"}, opts=child)
        nat = aws.ec2.NatGateway(
            f"{name}-nat", allocation_id=eip.id, subnet_id=public_subnets[0].id,
            tags={**args.tags, "Name": f"{name}-nat"},
            # The NAT needs the internet gateway attached before it can route.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[igw]))
        private_rt = aws.ec2.RouteTable(
            f"{name}-private-rt", vpc_id=vpc.id,
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", nat_gateway_id=nat.id)],
            tags={**args.tags, "Name": f"{name}-private"}, opts=child)
        for i, subnet in enumerate(private_subnets):
            aws.ec2.RouteTableAssociation(f"{name}-private-{i}-rt", subnet_id=subnet.id,
                                          route_table_id=private_rt.id, opts=child)

        self.vpc_id = vpc.id
        self.private_subnet_ids = pulumi.Output.all(*[s.id for s in private_subnets])
        self.public_subnet_ids = pulumi.Output.all(*[s.id for s in public_subnets])
        self.register_outputs({
            "vpc_id": self.vpc_id,
            "private_subnet_ids": self.private_subnet_ids,
            "public_subnet_ids": self.public_subnet_ids,
        })
