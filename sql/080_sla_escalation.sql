-- A hand-off that misses its SLA is escalated: a CRM task, due at once, for the mapping's
-- `handoff.escalate_to` owner (a sales manager), or for the lead's own owner when none is named.
ALTER TABLE crm.nurture_policies ADD COLUMN escalate_to text;
