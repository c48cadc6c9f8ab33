-- One database per service (each service owns its own; none reads another's tables).
CREATE DATABASE directive;
CREATE DATABASE documents;
CREATE DATABASE meetings;
CREATE DATABASE approvals;
CREATE DATABASE notifier;
CREATE DATABASE audit;
