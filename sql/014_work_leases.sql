-- Work shared by several `crm-sync serve` processes on one database: a job (one connector's sync,
-- the attribution refresh) is run by whoever holds its lease. A holder renews the lease while it
-- works; a dead holder stops renewing and the lease expires, so another worker takes the job
-- within the lease time. `not_before` is when the next round is due (the poll interval after the
-- last finished run), so N workers still sync each connector once per interval.
CREATE TABLE crm.work_leases (
    job          text PRIMARY KEY,
    holder       text,
    expires_at   timestamptz NOT NULL DEFAULT '-infinity',
    not_before   timestamptz NOT NULL DEFAULT '-infinity',
    acquired_at  timestamptz,
    finished_at  timestamptz,
    runs         bigint NOT NULL DEFAULT 0
);

CREATE VIEW reporting.work_leases AS
SELECT job, holder, expires_at, not_before, acquired_at, finished_at, runs,
       holder IS NOT NULL AND expires_at > now() AS running
  FROM crm.work_leases;
