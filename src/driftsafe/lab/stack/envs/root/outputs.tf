output "env" {
  value = module.app.env
}

output "port" {
  value = module.app.port
}

output "max_connections" {
  value = module.app.max_connections
}

output "runtime_dir" {
  value = module.app.runtime_dir
}

output "config_path" {
  value = module.app.config_path
}

output "secret_path" {
  value = module.app.secret_path
}

output "release_id" {
  value = module.app.release_id
}

output "release_path" {
  value = module.app.release_path
}

output "current_path" {
  value = module.app.current_path
}
