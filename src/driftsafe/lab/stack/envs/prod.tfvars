env             = "prod"
port            = 8080
max_connections = 200
features = {
  new_checkout = true
  beta_search  = false
}
release_content = "app 1.0.0\n"
secret_version  = 1
