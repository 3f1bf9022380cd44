"""Caching: an exact cache and a semantic cache, tenant-scoped, as an around-call stage."""
