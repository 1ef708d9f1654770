SELECT * FROM (VALUES (1, 'Seattle'), (2, 'Redmond')) AS v(id, city)
