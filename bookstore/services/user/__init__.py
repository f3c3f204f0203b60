"""The user service: accounts, password checks and the tokens that prove who is calling.

What it owns: a table of users (id, username, password hash). Nobody else reads that table;
other services learn who a caller is from the signed JWT this service issues at login,
which the gateway checks locally on every request. That is the point of a token: the
user service is asked once per login, not once per request, so it is not on the hot path
of every order and can even be down for a while without logging anyone out.

Why passwords are hashed with Argon2 (see ``passwords.py``): a leaked table of plain or
fast-hashed (SHA-256) passwords is cracked at billions of guesses per second on a GPU. A
memory-hard key-derivation function makes every guess cost milliseconds and megabytes.

When not to build this yourself: a real shop delegates accounts to an identity provider
(OpenID Connect: Keycloak, Auth0, Cognito, ...) that also does e-mail verification, password
reset, MFA, lockout and key rotation. This service shows the moving parts, not all of them.
"""
