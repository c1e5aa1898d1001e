# The shared data directory (bundles, apps, Python environments, rendered output): EFS, readable and writable by
# every node at once, with a mount target in each zone.
resource "aws_efs_file_system" "data" {
  creation_token   = "${var.name}-data"
  encrypted        = true
  performance_mode = "generalPurpose"
  # Elastic throughput follows bursts of environment builds and bundle uploads without provisioning.
  throughput_mode = "elastic"

  lifecycle_policy {
    transition_to_ia = "AFTER_30_DAYS"
  }

  tags = {
    Name = "${var.name}-data"
  }
}

resource "aws_efs_backup_policy" "data" {
  file_system_id = aws_efs_file_system.data.id

  backup_policy {
    status = "ENABLED"
  }
}

resource "aws_security_group" "efs" {
  name_prefix = "${var.name}-efs-"
  description = "EFS of Connect: NFS from the EKS workers only"
  vpc_id      = module.vpc.vpc_id

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "efs_from_nodes" {
  security_group_id            = aws_security_group.efs.id
  description                  = "NFS from the EKS workers"
  referenced_security_group_id = module.eks.node_security_group_id
  ip_protocol                  = "tcp"
  from_port                    = 2049
  to_port                      = 2049
}

# One mount target per private subnet (one per zone): pods mount through the target in their own zone.
resource "aws_efs_mount_target" "data" {
  for_each = { for i, az in local.azs : az => module.vpc.private_subnets[i] }

  file_system_id  = aws_efs_file_system.data.id
  subnet_id       = each.value
  security_groups = [aws_security_group.efs.id]
}
