data "aws_availability_zones" "available" {
  state = "available"

  filter {
    name   = "opt-in-status"
    values = ["opt-in-not-required"]
  }
}

locals {
  # Two zones: the reference architecture survives the loss of one (a node, the database standby, an EFS mount target
  # and a NAT gateway in each).
  azs = slice(data.aws_availability_zones.available.names, 0, 2)

  tags = {
    Application  = "connect"
    Installation = var.name
  }
}

module "vpc" {
  source  = "terraform-aws-modules/vpc/aws"
  version = "~> 5.21"

  name = var.name
  cidr = var.vpc_cidr
  azs  = local.azs

  # Private /20s for pods (the VPC CNI gives every pod a VPC address), public /24s for the ALB and the NAT gateways.
  private_subnets = [for i, az in local.azs : cidrsubnet(var.vpc_cidr, 4, i)]
  public_subnets  = [for i, az in local.azs : cidrsubnet(var.vpc_cidr, 8, 200 + i)]

  # One NAT gateway per zone, so that a zone outage does not cut the other zone's egress (pip installs, OIDC).
  enable_nat_gateway     = true
  single_nat_gateway     = false
  one_nat_gateway_per_az = true

  enable_dns_hostnames = true
  enable_dns_support   = true

  # Where the AWS Load Balancer Controller places internet-facing and internal load balancers.
  public_subnet_tags = {
    "kubernetes.io/role/elb" = 1
  }
  private_subnet_tags = {
    "kubernetes.io/role/internal-elb" = 1
  }
}
