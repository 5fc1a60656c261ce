-- A contact may run a sequence more than once: at most one live (active or paused) enrolment per
-- sequence, and finished ones kept as history. Each run is its own row, so its commands (keyed by
-- the enrolment id) are new ones; re-using a finished row made a second stall's reactivation mails
-- collide with the first run's command ids and never go out.
ALTER TABLE crm.enrollments DROP CONSTRAINT enrollments_connector_contact_external_id_sequence_key;
CREATE UNIQUE INDEX enrollments_live_idx ON crm.enrollments (connector, contact_external_id, sequence)
    WHERE status IN ('active', 'paused');
CREATE INDEX enrollments_contact_sequence_idx ON crm.enrollments (connector, contact_external_id, sequence);

-- `reenroll_after` in a sequence file: how long after a run ended a new firing of the trigger
-- enrols the contact again (NULL: never).
ALTER TABLE crm.nurture_sequences ADD COLUMN reenroll_after interval;
