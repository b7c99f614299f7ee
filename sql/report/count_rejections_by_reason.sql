-- Rejected (ineligible, non-cancelled) visits dated in a window, by reason, most frequent first.
SELECT reason, count(*) AS visits
  FROM conflict.rejected_visits
 WHERE visit_date BETWEEN %(window_start)s AND %(window_end)s
 GROUP BY reason
 ORDER BY visits DESC, reason;
