output "env" {
  value = var.env
}

output "port" {
  value = var.port
}

output "max_connections" {
  value = var.max_connections
}

output "runtime_dir" {
  value = local.dir
}

output "config_path" {
  value = lab_config_file.app.path
}

output "features_path" {
  value = lab_config_file.features.path
}

output "secret_path" {
  value = lab_secret_file.app.path
}

output "release_id" {
  value = lab_release.app.release_id
}

output "release_path" {
  value = lab_release.app.path
}

output "current_path" {
  value = lab_symlink.current.path
}
