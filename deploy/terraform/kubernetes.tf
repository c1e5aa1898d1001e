resource "kubernetes_namespace_v1" "connect" {
  metadata {
    name = var.namespace
  }

  depends_on = [module.eks]
}

# The keys the chart reads (secret.existingSecret = "connect-database").
resource "random_id" "cluster_secret" {
  byte_length = 32
}

resource "random_id" "bootstrap_secret" {
  byte_length = 32
}

resource "kubernetes_secret_v1" "database" {
  metadata {
    name      = "connect-database"
    namespace = kubernetes_namespace_v1.connect.metadata[0].name
  }

  data = {
    "connection-string"    = "Host=${aws_db_instance.connect.address};Port=${aws_db_instance.connect.port};Database=connect;Username=connect;Password=${random_password.database.result};SSL Mode=Require"
    "cluster-secret"       = random_id.cluster_secret.b64_std
    "bootstrap-secret-key" = random_id.bootstrap_secret.b64_std
  }
}

# Dynamic EFS volumes through access points, for other workloads. An access point makes every file operation run as
# one enforced POSIX user, while the Connect server (root in its pod) gives each content process its own user and
# owner; so Connect's data volume below is a static volume on the file system's root instead.
resource "kubernetes_storage_class_v1" "efs" {
  metadata {
    name = "efs"
  }

  storage_provisioner = "efs.csi.aws.com"
  reclaim_policy      = "Retain"

  parameters = {
    provisioningMode = "efs-ap"
    fileSystemId     = aws_efs_file_system.data.id
    directoryPerms   = "700"
    basePath         = "/dynamic"
  }

  depends_on = [module.eks]
}

resource "kubernetes_persistent_volume_v1" "data" {
  metadata {
    name = "${var.name}-data"
  }

  spec {
    capacity = {
      # EFS has no size; Kubernetes wants one.
      storage = "100Gi"
    }
    access_modes                     = ["ReadWriteMany"]
    persistent_volume_reclaim_policy = "Retain"
    # A class no provisioner serves: the claim below binds to this volume and nothing else.
    storage_class_name = "efs-static"

    persistent_volume_source {
      csi {
        driver        = "efs.csi.aws.com"
        volume_handle = aws_efs_file_system.data.id
      }
    }
  }

  depends_on = [aws_efs_mount_target.data]
}

# The chart's persistence.existingClaim.
resource "kubernetes_persistent_volume_claim_v1" "data" {
  metadata {
    name      = "connect-data"
    namespace = kubernetes_namespace_v1.connect.metadata[0].name
  }

  spec {
    access_modes       = ["ReadWriteMany"]
    storage_class_name = "efs-static"
    volume_name        = kubernetes_persistent_volume_v1.data.metadata[0].name

    resources {
      requests = {
        storage = "100Gi"
      }
    }
  }
}

# The image registry for deploy/Dockerfile's image.
resource "aws_ecr_repository" "connect" {
  name                 = var.name
  image_tag_mutability = "IMMUTABLE"

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
  }
}

# Connect itself, once its image is in ECR (connect_image_tag).
resource "helm_release" "connect" {
  count = var.connect_image_tag == "" ? 0 : 1

  name      = "connect"
  chart     = "${path.module}/../helm/connect"
  namespace = kubernetes_namespace_v1.connect.metadata[0].name

  values = [yamlencode({
    image       = { repository = aws_ecr_repository.connect.repository_url, tag = var.connect_image_tag }
    serverUrl   = var.server_url
    secret      = { existingSecret = kubernetes_secret_v1.database.metadata[0].name }
    persistence = { existingClaim = kubernetes_persistent_volume_claim_v1.data.metadata[0].name }
    ingress     = { certificateArn = var.certificate_arn }
  })]

  # The Ingress needs the controller's webhook; the pods need the EFS driver.
  depends_on = [helm_release.aws_load_balancer_controller, module.eks]
}
