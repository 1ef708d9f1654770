SELECT 1 /* /* nested */ ; DROP TABLE x */
