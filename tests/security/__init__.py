"""The attack tests of issue 17: each plays one finding of the security review as an attacker role."""
