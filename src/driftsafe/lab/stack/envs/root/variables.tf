variable "env" {
  description = "Environment name (staging, prod)."
  type        = string
}

variable "port" {
  description = "Port the app listens on."
  type        = number
}

variable "max_connections" {
  description = "Connection limit written to app.conf."
  type        = number
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
  description = "The app's secret (set TF_VAR_app_secret); it never reaches the state."
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
