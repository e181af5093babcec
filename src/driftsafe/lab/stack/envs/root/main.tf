# One environment: the shared app module with this environment's values
# (terraform.tfvars). staging and prod differ only in their tfvars and backend.
terraform {
  required_providers {
    lab = {
      source  = "registry.driftsafe.local/driftsafe/lab"
      version = "0.1.0"
    }
  }
}

module "app" {
  source = "../../modules/app"

  env             = var.env
  port            = var.port
  max_connections = var.max_connections
  features        = var.features
  release_content = var.release_content
  runtime_dir     = "${path.root}/../../runtime/${var.env}"
  rollout_seconds = var.rollout_seconds
  rollout_trigger = var.rollout_trigger
  app_secret      = var.app_secret
  secret_version  = var.secret_version
}
