"""The CRM port and its adapters (local now; HubSpot and Salesforce implement the same port)."""
