env             = "staging"
port            = 8081
max_connections = 50
features = {
  new_checkout = true
  beta_search  = true
}
release_content = "app 1.0.0\n"
secret_version  = 1
