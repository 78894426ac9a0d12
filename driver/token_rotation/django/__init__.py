"""token_rotation.django: the tool as a Django app (pip install 'token-rotation[django]').

Add "token_rotation.django" to INSTALLED_APPS, then:
- `manage.py migrate` installs and upgrades the token_rotation schema through the same machinery as
  `token-rotation install` (token_rotation.migrate: the same SQL, the same token_rotation.alembic_version
  row), so that a database installed one way is installed for the other;
  `manage.py migrate token_rotation zero` uninstalls it.
- `manage.py rotate_tokens app_label.Model [--field token]` rotates a model's UUIDField with the CLI's runner
  (live bar, ETA, exit codes, Ctrl-C); `manage.py rotation_status` is `token-rotation status`.
- `token_rotation.django.operations.RotateTokens("Ticket", "token", batch_size=3000)` rotates in a deploy's
  migration (atomic = False on the Migration; the next migrate resumes a run the deploy left open).
The database is the Django connection's (`--database` alias, default "default").
"""
