# One app, made of real local files: a mutable config (drifts in place), feature
# flags, a secret that never reaches state, an immutable release replaced
# create-before-destroy, the `current` pointer to it, and a rollout delay.
terraform {
  required_providers {
    lab = {
      source  = "registry.driftsafe.local/driftsafe/lab"
      version = "0.1.0"
    }
  }
}

locals {
  # Absolute, so the provider (started in the root module's directory) and
  # every later reader agree on where the files are.
  dir = abspath(var.runtime_dir)
}

resource "lab_config_file" "app" {
  path = "${local.dir}/app.conf"
  values = {
    env             = var.env
    port            = tostring(var.port)
    max_connections = tostring(var.max_connections)
  }
}

resource "lab_config_file" "features" {
  path   = "${local.dir}/features.conf"
  values = { for name, enabled in var.features : name => tostring(enabled) }
}

resource "lab_secret_file" "app" {
  path           = "${local.dir}/secret.txt"
  secret         = var.app_secret
  secret_version = var.secret_version
}

resource "lab_release" "app" {
  base_dir = local.dir
  content  = var.release_content

  lifecycle {
    # The new release exists before the old one goes, so `current` never dangles.
    create_before_destroy = true
  }
}

resource "lab_symlink" "current" {
  path   = "${local.dir}/current"
  target = lab_release.app.path
}

resource "lab_delay" "rollout" {
  seconds = var.rollout_seconds
  triggers = {
    release_id = lab_release.app.release_id
    rollout    = var.rollout_trigger
  }

  depends_on = [lab_symlink.current]
}
