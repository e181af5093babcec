"""The lab Terraform provider, written on pyvider (protocol v6).

It manages real local things (config files, secret files, immutable releases, a
``current`` symlink, a deliberate delay) so the whole driftsafe drill runs offline.
Terraform starts it through the launcher in driftsafe's filesystem mirror
(``python -m driftsafe.provider``), or driftsafe's engine starts that same command
once for a whole Terraform run (a session, see ``goplugin.py``). Nothing else in
driftsafe imports this package, and it imports nothing of driftsafe.
"""
