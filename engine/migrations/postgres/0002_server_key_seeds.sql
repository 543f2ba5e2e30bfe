-- Key sets of format version 2 carry `a` halves their client chose; from version 3 every
-- `a` is expanded from the seed the server hands out (the registration challenge), and
-- version 2 no longer decodes. The old key sets are dropped: clients see HasKeys answer
-- false and upload keys made from the server's seed. Budgets and identities are kept.
DELETE FROM key_sets;
