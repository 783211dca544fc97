/*
 * dmf.h
 *	  Settings and constants shared by the SQL-callable parts of dmf.
 */
#ifndef DMF_H
#define DMF_H

#define DMF_VERSION "0.1.0"

extern int	dmf_max_memory_kb;

#endif
