-- The nurture engine's enrolment and scoring phases consume each touch exactly once, from a queue
-- filled by the database as touches become usable, instead of a touch-id watermark.
--
-- Why: ids are handed out when a row is inserted, not when it commits. A watermark moved to the
-- highest visible id skipped a touch whose transaction committed after a tick had read a higher
-- one (two writers at once: the inbox processor and a sync), and it skipped touches that arrive
-- before their contact and are matched by e-mail later (their contact is set after the watermark
-- has passed them). A queue row becomes visible when its touch commits, and a phase deletes the
-- rows it consumes in its own transaction, so nothing is skipped and nothing counted twice.
CREATE TABLE crm.nurture_pending_touches (
    phase     text NOT NULL CHECK (phase IN ('enroll', 'scoring')),
    touch_id  bigint NOT NULL,
    PRIMARY KEY (phase, touch_id)
);

-- Statement-level, with transition tables: one INSERT … SELECT per statement, not a call per row.
CREATE FUNCTION crm.queue_new_touches() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    INSERT INTO crm.nurture_pending_touches (phase, touch_id)
    SELECT p.phase, n.id
      FROM new_touches n CROSS JOIN (VALUES ('enroll'), ('scoring')) AS p(phase)
     WHERE n.contact_external_id IS NOT NULL
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$fn$;

-- A touch whose contact is found later (by e-mail) becomes usable then.
CREATE FUNCTION crm.queue_resolved_touches() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    INSERT INTO crm.nurture_pending_touches (phase, touch_id)
    SELECT p.phase, n.id
      FROM new_touches n
      JOIN old_touches o ON o.id = n.id
     CROSS JOIN (VALUES ('enroll'), ('scoring')) AS p(phase)
     WHERE o.contact_external_id IS NULL AND n.contact_external_id IS NOT NULL
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$fn$;

CREATE TRIGGER touches_queue_new AFTER INSERT ON crm.touches
    REFERENCING NEW TABLE AS new_touches
    FOR EACH STATEMENT EXECUTE FUNCTION crm.queue_new_touches();
CREATE TRIGGER touches_queue_resolved AFTER UPDATE ON crm.touches
    REFERENCING OLD TABLE AS old_touches NEW TABLE AS new_touches
    FOR EACH STATEMENT EXECUTE FUNCTION crm.queue_resolved_touches();

-- Carry over what the watermarks had not consumed yet.
INSERT INTO crm.nurture_pending_touches (phase, touch_id)
SELECT w.name, t.id
  FROM crm.nurture_watermarks w
  JOIN crm.touches t ON t.id > w.touch_id
 WHERE w.name IN ('enroll', 'scoring') AND t.contact_external_id IS NOT NULL;

DROP TABLE crm.nurture_watermarks;
