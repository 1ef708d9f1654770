SELECT 1;; -- done
