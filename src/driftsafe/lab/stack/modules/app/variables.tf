variable "env" {
  description = "Environment name (staging, prod)."
  type        = string
}

variable "port" {
  description = "Port the app listens on."
  type        = number

  validation {
    condition     = var.port >= 1 && var.port <= 65535 && floor(var.port) == var.port
    error_message = "port must be a whole number from 1 to 65535."
  }
}

variable "max_connections" {
  description = "Connection limit written to app.conf."
  type        = number

  validation {
    condition     = var.max_connections >= 1 && floor(var.max_connections) == var.max_connections
    error_message = "max_connections must be a whole number of at least 1."
  }
}

variable "features" {
  description = "Feature flags written to features.conf."
  type        = map(bool)
  default     = {}
}

variable "release_content" {
  description = "Content of the immutable release; any change is a new release."
  type        = string
}

variable "runtime_dir" {
  description = "Directory for the app's files."
  type        = string
}

variable "rollout_seconds" {
  description = "How long the rollout step takes (the drill uses it to slow an apply)."
  type        = number
  default     = 0
}

variable "rollout_trigger" {
  description = "Any new value re-runs the rollout step (the drill uses it to start a slow apply)."
  type        = string
  default     = ""
}

variable "app_secret" {
  description = "The app's secret: reaches secret.txt through a write-only attribute, never state."
  type        = string
  default     = null
  sensitive   = true
  ephemeral   = true
}

variable "secret_version" {
  description = "Bump to rewrite secret.txt with the current app_secret."
  type        = number
  default     = 1
}
