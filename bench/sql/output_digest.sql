-- Benchmark only: a digest of the whole conflict map and of the rejected visits, so that every measurement
-- of a window can be checked to leave exactly the same output.
SELECT (SELECT count(*) FROM conflict.conflict_visit_maps WHERE status = 'ACTIVE') AS active_pairs,
       (SELECT md5(coalesce(string_agg(concat_ws(':', visit_id, conflict_visit_id, caregiver_id, conflict_date,
                                                 conflict_type, overlap_minutes, gap_minutes, distance_miles, status),
                                       ',' ORDER BY visit_id, conflict_visit_id), ''))
        FROM conflict.conflict_visit_maps) AS pairs_md5,
       (SELECT count(*) FROM conflict.rejected_visits) AS rejected,
       (SELECT md5(coalesce(string_agg(concat_ws(':', visit_id, visit_date, reason), ',' ORDER BY visit_id), ''))
        FROM conflict.rejected_visits) AS rejected_md5;
