output "region" {
  value = var.region
}

output "cluster_name" {
  description = "EKS cluster; `aws eks update-kubeconfig --name <it> --region <region>` points kubectl at it."
  value       = module.eks.cluster_name
}

output "ecr_repository_url" {
  description = "Where to push the image built from deploy/Dockerfile."
  value       = aws_ecr_repository.connect.repository_url
}

output "database_endpoint" {
  description = "RDS PostgreSQL endpoint (host:port), reachable from the workers only."
  value       = aws_db_instance.connect.endpoint
}

output "efs_file_system_id" {
  value = aws_efs_file_system.data.id
}

output "helm_values" {
  description = "Values for deploy/helm/connect when installing it by hand (helm install connect deploy/helm/connect -n <namespace> -f -)."
  value = yamlencode({
    image       = { repository = aws_ecr_repository.connect.repository_url }
    secret      = { existingSecret = kubernetes_secret_v1.database.metadata[0].name }
    persistence = { existingClaim = kubernetes_persistent_volume_claim_v1.data.metadata[0].name }
  })
}

output "bootstrap_secret_key" {
  description = "CONNECT_BOOTSTRAP_SECRETKEY for `rsconnect bootstrap`, which creates the first administrator."
  value       = random_id.bootstrap_secret.b64_std
  sensitive   = true
}
