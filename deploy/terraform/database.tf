# PostgreSQL for the catalog and for Orleans (membership, grain state, reminders). Multi-AZ: a standby in the other
# zone takes over on failure (a minute or two, during which nodes report not ready).
resource "random_password" "database" {
  length = 40
  # Connection strings are split on ';' and '='; letters and digits need no quoting anywhere.
  special = false
}

resource "aws_db_subnet_group" "connect" {
  name       = var.name
  subnet_ids = module.vpc.private_subnets
}

resource "aws_security_group" "database" {
  name_prefix = "${var.name}-database-"
  description = "PostgreSQL of Connect: reachable from the EKS workers only"
  vpc_id      = module.vpc.vpc_id

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "database_from_nodes" {
  security_group_id            = aws_security_group.database.id
  description                  = "PostgreSQL from the EKS workers (Connect pods)"
  referenced_security_group_id = module.eks.node_security_group_id
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
}

resource "aws_db_instance" "connect" {
  identifier = var.name

  engine = "postgres"
  # The major version; RDS picks its current minor and applies minor upgrades in the maintenance window.
  engine_version             = "15"
  auto_minor_version_upgrade = true
  instance_class             = var.db_instance_class

  allocated_storage     = var.db_allocated_storage
  max_allocated_storage = var.db_max_allocated_storage
  storage_type          = "gp3"
  storage_encrypted     = true

  multi_az               = true
  db_subnet_group_name   = aws_db_subnet_group.connect.name
  vpc_security_group_ids = [aws_security_group.database.id]
  publicly_accessible    = false

  db_name  = "connect"
  username = "connect"
  password = random_password.database.result

  backup_retention_period      = 14
  copy_tags_to_snapshot        = true
  deletion_protection          = var.deletion_protection
  skip_final_snapshot          = false
  final_snapshot_identifier    = "${var.name}-final"
  performance_insights_enabled = true
}
