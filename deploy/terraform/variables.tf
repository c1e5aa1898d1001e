variable "region" {
  description = "AWS region of the installation."
  type        = string
  default     = "us-east-1"
}

variable "name" {
  description = "Name of the installation: prefixes the VPC, the EKS cluster, the database and the file system."
  type        = string
  default     = "connect"
}

variable "vpc_cidr" {
  description = "Address range of the VPC; split into a public and a private subnet per availability zone."
  type        = string
  default     = "10.40.0.0/16"
}

variable "kubernetes_version" {
  description = "EKS Kubernetes version."
  type        = string
  default     = "1.33"
}

variable "node_instance_type" {
  description = "EC2 instance type of the workers. Each runs Connect nodes and the content processes they start (8 vCPU, 32 GiB)."
  type        = string
  default     = "t3.2xlarge"
}

variable "node_count" {
  description = "Workers in the managed node group, spread over the two availability zones."
  type        = number
  default     = 2

  validation {
    condition     = var.node_count >= 2
    error_message = "At least two workers, one per availability zone, so that losing one zone leaves a node."
  }
}

variable "db_instance_class" {
  description = "RDS instance class of the PostgreSQL database (catalog, Orleans membership, grain state and reminders)."
  type        = string
  default     = "db.m6g.large"
}

variable "db_allocated_storage" {
  description = "Initial database storage in GiB; storage autoscaling grows it up to db_max_allocated_storage."
  type        = number
  default     = 50
}

variable "db_max_allocated_storage" {
  description = "Upper bound of database storage autoscaling in GiB."
  type        = number
  default     = 500
}

variable "deletion_protection" {
  description = "Protect the database from deletion (turn off before terraform destroy)."
  type        = bool
  default     = true
}

variable "namespace" {
  description = "Kubernetes namespace of Connect; the database Secret and the data volume claim are created in it."
  type        = string
  default     = "connect"
}

variable "connect_image_tag" {
  description = "Tag of the Connect image pushed to the ECR repository this creates. Empty: Connect itself is not installed (push the image first, then set it)."
  type        = string
  default     = ""
}

variable "server_url" {
  description = "Public URL of Connect (e.g. https://connect.example.com); empty until DNS points at the ALB."
  type        = string
  default     = ""
}

variable "certificate_arn" {
  description = "ACM certificate for HTTPS on the ALB; empty: HTTP only."
  type        = string
  default     = ""
}

variable "lb_controller_chart_version" {
  description = "Version of the aws-load-balancer-controller Helm chart."
  type        = string
  default     = "1.13.0"
}
