"""crmsync: keeps a CRM in step with shops and payment providers."""
